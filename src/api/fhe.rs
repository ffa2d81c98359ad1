//! Homomorphic aggregation (docs/fhe.md): key sets, the `fhe_vector_sum` aggregate, rounds, and
//! the test-only in-database client functions. The logic is in `crate::fhe` and `encml_fhe`.

use crate::fhe::{keysets, rounds};
use crate::pg::aggregate::Aggregate;
use crate::pg::c_functions;
use crate::pg::errors::fhe_error;
use crate::pg::errors::{not_null, raise, raise_full};
use crate::pg::expanded::{self, FlatForm};
use crate::pg::gucs::FHE_CLIENT_FUNCTIONS;
use crate::pg::varlena::{ByteaBytes, OwnedVarlena, VarlenaBytes};
use crate::types::fhe_vector::{FheVector, FheVectorOut};
use crate::types::reg::RegRole;
use encml_fhe::keys::SecretKey;
use encml_fhe::params::Encoding;
use encml_fhe::sum::Sum;
use encml_fhe::vector::{parse_header, EncryptedVector};
use pgrx::fcinfo::{pg_arg_is_null, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};

/// Registers an FHE key set from its public material (written by `pg_encrypt_ml-fhe keygen`).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_register_keyset(name: &str, public_material: ByteaBytes<'_>) -> Uuid {
    keysets::register(name, public_material.0, None)
}

/// Registers a vector key set whose rounds take proven updates only, with the CRS the proofs
/// are made with (both written by `pg_encrypt_ml-fhe keygen --proofs`).
#[pg_extern(volatile, strict, parallel_unsafe, name = "fhe_register_keyset")]
fn fhe_register_keyset_with_proofs(
    name: &str,
    public_material: ByteaBytes<'_>,
    proof_crs: ByteaBytes<'_>,
) -> Uuid {
    keysets::register(name, public_material.0, Some(proof_crs.0))
}

/// Header fields of an fhe_vector (unauthenticated: anyone can write any header; only the sum
/// decrypting correctly tells).
#[pg_extern(immutable, strict, parallel_safe)]
fn fhe_vector_info(
    value: FheVector<'_>,
) -> TableIterator<
    'static,
    (
        name!(keyset, Uuid),
        name!(dim, i32),
        name!(terms, i64),
        name!(value_bits, i32),
        name!(frac_bits, i32),
        name!(message_bits, i32),
    ),
> {
    let (key_id, dim, terms, e, _) = parse_header(value.0).unwrap_or_else(|e| fhe_error(e));
    TableIterator::once((
        Uuid::from_bytes(key_id),
        dim as i32,
        terms as i64,
        e.value_bits as i32,
        e.frac_bits as i32,
        e.message_bits as i32,
    ))
}

/// How many times this backend loaded key-set material (each key set once, then cached).
#[pg_extern(volatile, parallel_restricted)]
fn fhe_keyset_loads() -> i64 {
    keysets::loads()
}

pub(crate) fn require_client_functions(name: &str) {
    if !FHE_CLIENT_FUNCTIONS.get() {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} is for tests and demos only and is disabled"),
            Some(
                "It puts plaintext (or a secret key) inside the database, which homomorphic \
                 aggregation exists to avoid."
                    .into(),
            ),
            Some(
                "Encrypt and decrypt with the pg_encrypt_ml-fhe tool; a superuser may SET \
                 encml.fhe_client_functions = on in a test session."
                    .into(),
            ),
        );
    }
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): a fresh key set, both halves, as
/// `pg_encrypt_ml-fhe keygen` writes them; the secret half has then been inside the server.
#[pg_extern(volatile, parallel_restricted)]
fn fhe_keygen(
) -> TableIterator<'static, (name!(public_material, Vec<u8>), name!(secret_key, Vec<u8>))> {
    require_client_functions("fhe_keygen");
    let (sk, pk) = encml_fhe::keys::generate();
    TableIterator::once((pk.to_bytes(), sk.to_bytes().to_vec()))
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): encrypts values under a key set's
/// public key, as the client tool does.
#[pg_extern(volatile, strict, parallel_restricted)]
fn fhe_encrypt(
    values: Vec<f64>,
    keyset: Uuid,
    value_bits: default!(i32, 16),
    frac_bits: default!(i32, 8),
    max_terms: default!(i32, 1000),
) -> FheVectorOut {
    require_client_functions("fhe_encrypt");
    let bits = |v: i32| u8::try_from(v).unwrap_or(0);
    let encoding = Encoding::for_sums(bits(value_bits), bits(frac_bits), max_terms.max(1) as u64)
        .unwrap_or_else(|e| fhe_error(e));
    let pk = keysets::vector_public_key(keyset.as_bytes());
    let v = EncryptedVector::encrypt(&pk, &values, encoding).unwrap_or_else(|e| fhe_error(e));
    FheVectorOut(OwnedVarlena::from_slice(&v.to_bytes()))
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts with a secret key passed in.
#[pg_extern(stable, strict, parallel_restricted)]
fn fhe_decrypt(value: FheVector<'_>, secret_key: ByteaBytes<'_>) -> Vec<f64> {
    require_client_functions("fhe_decrypt");
    let sk = SecretKey::from_bytes(secret_key.0).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "not an FHE secret key of this parameter set",
        )
    });
    let v = EncryptedVector::from_bytes(value.0).unwrap_or_else(|e| fhe_error(e));
    v.decrypt(&sk).unwrap_or_else(|e| fhe_error(e))
}

/// Opens an aggregation round; returns its id (encml_fhe_admin). Rounds of a key set without a
/// CRS need `unproven => true`; `decryptor` (NULL: any member of encml_fhe_decryptor) is the
/// only role the round's sum is released to. Not strict, for that NULL; every other argument
/// must be given.
#[pg_extern(volatile, parallel_unsafe, name = "fhe_open_round")]
#[allow(clippy::too_many_arguments)]
fn fhe_open_round_v2(
    keyset: Option<Uuid>,
    dim: Option<i32>,
    min_contributions: default!(Option<i32>, 10),
    max_contributions: default!(Option<i32>, 1000),
    value_bits: default!(Option<i32>, 16),
    frac_bits: default!(Option<i32>, 8),
    unproven: default!(Option<bool>, false),
    decryptor: default!(Option<RegRole>, "NULL"),
) -> i64 {
    rounds::open(
        not_null(keyset, "keyset"),
        not_null(dim, "dim"),
        not_null(min_contributions, "min_contributions"),
        not_null(max_contributions, "max_contributions"),
        not_null(value_bits, "value_bits"),
        not_null(frac_bits, "frac_bits"),
        not_null(unproven, "unproven"),
        decryptor.map(|RegRole(r)| r),
    )
}

/// `fhe_open_round` of the 0.1.0 schema (six arguments, symbol `fhe_open_round_wrapper`), until
/// `ALTER EXTENSION pg_encrypt_ml UPDATE`: that schema has no CRS, so its rounds are unproven as
/// they were. Not part of the current schema.
#[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
fn fhe_open_round(
    keyset: Uuid,
    dim: i32,
    min_contributions: i32,
    max_contributions: i32,
    value_bits: i32,
    frac_bits: i32,
) -> i64 {
    rounds::open(
        keyset,
        dim,
        min_contributions,
        max_contributions,
        value_bits,
        frac_bits,
        true,
        None,
    )
}

/// Submits one encrypted update to an open round; returns the round's count (contributors).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_submit(round: i64, update: FheVector<'_>) -> i32 {
    rounds::submit(round, update.0)
}

/// Submits a proven update (`pg_encrypt_ml-fhe encrypt --crs`) to an open round; returns the
/// round's count (contributors). (A name of its own: an overload of `fhe_submit` would make a
/// call with a base64 literal ambiguous.)
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_submit_proven(round: i64, update: ByteaBytes<'_>) -> i32 {
    rounds::submit(round, update.0)
}

/// Closes a round and computes its sum once (encml_fhe_admin); refuses below min_contributions.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_close_round(round: i64) -> i32 {
    rounds::close(round, None)
}

/// Closes a proven round with a differentially private sum: discrete Gaussian noise for
/// (dp_epsilon, dp_delta) at the sensitivity the proofs bound, added to the encrypted sum; each
/// read of the sum is charged to the reader's privacy budget (encml_fhe_admin).
#[pg_extern(volatile, strict, parallel_unsafe, name = "fhe_close_round")]
fn fhe_close_round_dp(round: i64, dp_epsilon: f64, dp_delta: f64) -> i32 {
    rounds::close(round, Some((dp_epsilon, dp_delta)))
}

/// The encrypted sum of a closed round (encml_fhe_decryptor).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_round_sum(round: i64) -> FheVectorOut {
    rounds::sum(round)
}

// ---- fhe_vector_sum: transition, combine, final, state input/output ----
//
// The running sum is an `fhe_sum_state`, a varlena type (the serialized `Sum`: the encrypted
// total and the fingerprints of what was added) rather than `internal`, so that Citus sums each
// shard on its worker and combines one state per shard on the coordinator. Inside an aggregate
// the state is a read-write expanded object updated in place (`pg::expanded`); it is flattened
// only when it leaves the aggregate.

impl FlatForm for Sum {
    fn to_bytes(&self) -> Vec<u8> {
        self.serialize()
    }
    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = expanded::methods::<Sum>();
        &METHODS
    }
}

const FHE_VECTOR_SUM: Aggregate = Aggregate {
    name: "fhe_vector_sum",
    window_ok: true,
};

/// The bytes of the varlena argument `n`.
///
/// # Safety
/// Argument `n` of the valid `fcinfo` must be a non-NULL varlena (flat, toasted or an expanded
/// object's pointer); the result must not outlive the current memory context.
unsafe fn arg_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    // SAFETY: as the caller guarantees, the datum is a non-NULL varlena; VarlenaBytes detoasts
    // (flattening an expanded object) into the current memory context when needed, which
    // outlives the call's use of the slice.
    unsafe {
        <VarlenaBytes as pgrx::datum::FromDatum>::from_polymorphic_datum(
            pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n),
            false,
            pg_sys::InvalidOid,
        )
        .expect("a value")
        .0
    }
}

/// A state that arrived flat (from a tuple: a parallel worker's or a Citus shard's).
///
/// # Safety
/// As for `arg_bytes`: argument `n` is a non-NULL `fhe_sum_state`.
unsafe fn parse_state(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Sum {
    // SAFETY: as the caller guarantees; the bytes are copied into the parsed Sum.
    unsafe { Sum::deserialize(arg_bytes(fcinfo, n)).unwrap_or_else(|e| fhe_error(e)) }
}

/// The running sum in argument 0 and its datum: the aggregate's own read-write expanded object,
/// or a new one in the aggregate context (first row, or a state that arrived flat).
///
/// # Safety
/// `fcinfo` must be the call of an fhe_vector_sum transition or combine function, argument 0
/// its `fhe_sum_state`. The result must not outlive the aggregate nor be held beside another
/// reference to the same object.
unsafe fn running_sum<'a>(fcinfo: pg_sys::FunctionCallInfo) -> (pg_sys::Datum, &'a mut Sum) {
    // SAFETY: fcinfo is valid (the contract) and FHE_VECTOR_SUM.context refuses calls outside
    // an aggregate. A read-write expanded `fhe_sum_state` is only ever made by `new_in::<Sum>`
    // (it is the type's only expanded form), so value_mut reads a Sum; a new object lives in a
    // child of the aggregate context, which outlives the call. Argument 0 is read only after
    // the NULL check.
    unsafe {
        let ctx = FHE_VECTOR_SUM.context(fcinfo);
        let d = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
        let d = if pg_arg_is_null(fcinfo, 0) {
            expanded::new_in(ctx, Sum::default())
        } else if expanded::is_read_write(d) {
            d
        } else {
            expanded::new_in(ctx, parse_state(fcinfo, 0))
        };
        (d, expanded::value_mut::<Sum>(d))
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_trans` (`c_functions!`): `fcinfo` is the
/// call's, (fhe_sum_state, fhe_vector) as sql/schema/fhe.sql declares.
unsafe fn sum_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), an fhe_vector_sum transition as
    // running_sum needs; argument 1, an fhe_vector varlena, is read only when not NULL.
    unsafe {
        let (d, sum) = running_sum(fcinfo);
        if !pg_arg_is_null(fcinfo, 1) {
            sum.add_serialized(arg_bytes(fcinfo, 1))
                .unwrap_or_else(|e| fhe_error(e));
        }
        d
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_combine` (`c_functions!`): `fcinfo` is the
/// call's, two `fhe_sum_state` arguments.
unsafe fn sum_combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate. Argument
    // 1 is read only when not NULL; as a read-write expanded object it is a Sum made by
    // new_in (the type's only expanded form), which the R/W pointer lets us empty; it is a
    // different object from argument 0, so its reference is gone before running_sum's.
    unsafe {
        FHE_VECTOR_SUM.context(fcinfo);
        if pg_arg_is_null(fcinfo, 1) {
            return if pg_arg_is_null(fcinfo, 0) {
                pg_return_null(fcinfo)
            } else {
                pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0)
            };
        }
        let other = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 1);
        let other = if expanded::is_read_write(other) {
            std::mem::take(expanded::value_mut::<Sum>(other))
        } else {
            parse_state(fcinfo, 1)
        };
        let (d, sum) = running_sum(fcinfo);
        sum.merge(other).unwrap_or_else(|e| fhe_error(e));
        d
    }
}

/// # Safety
/// Only as the C function `encml_fhe_vector_sum_final` (`c_functions!`): `fcinfo` is the
/// call's, one `fhe_sum_state` argument.
unsafe fn sum_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate; argument
    // 0 is read only when not NULL, and a read-write expanded one is a Sum made by new_in in a
    // child of the aggregate context (value_mut only drops its cached flat form; the Sum is
    // read). A flat or read-only one is parsed into an owned Sum.
    unsafe {
        FHE_VECTOR_SUM.context(fcinfo);
        if pg_arg_is_null(fcinfo, 0) {
            return pg_return_null(fcinfo);
        }
        let d = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0);
        let parsed;
        let sum = if expanded::is_read_write(d) {
            &*expanded::value_mut::<Sum>(d)
        } else {
            parsed = parse_state(fcinfo, 0);
            &parsed
        };
        match sum.total() {
            Some(t) => OwnedVarlena::from_slice(&t.to_bytes()).into_datum(),
            None => pg_return_null(fcinfo),
        }
    }
}

/// Text form: "es1:" and the serialized state in hex (Citus sends states between nodes as text).
///
/// # Safety
/// Only as the C function `encml_fhe_sum_state_out` (`c_functions!`), the type's output
/// function: `fcinfo` is the call's.
unsafe fn state_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT, so argument 0 is
    // a non-NULL fhe_sum_state (an expanded one is flattened by arg_bytes). pstrdup copies
    // `text`, alive until the end of the block, into the current memory context, where an
    // output function returns its string.
    unsafe {
        let bytes = arg_bytes(fcinfo, 0);
        let mut text = String::with_capacity(5 + 2 * bytes.len());
        text.push_str("es1:");
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        let text = std::ffi::CString::new(text).expect("hex has no NUL");
        pg_sys::Datum::from(pg_sys::pstrdup(text.as_ptr()))
    }
}

/// # Safety
/// Only as the C function `encml_fhe_sum_state_in` (`c_functions!`), the type's input
/// function: `fcinfo` is the call's.
unsafe fn state_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT with a cstring
    // argument, so argument 0 is a NUL-terminated string valid for the call.
    unsafe {
        let text =
            std::ffi::CStr::from_ptr(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr());
        let bad = || -> ! {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "not an fhe_sum_state",
            )
        };
        let hex = text
            .to_bytes()
            .strip_prefix(b"es1:")
            .filter(|h| h.len() % 2 == 0)
            .unwrap_or_else(|| bad());
        let bytes: Vec<u8> = hex
            .chunks_exact(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .unwrap_or_else(|| bad())
            })
            .collect();
        if let Err(e) = Sum::deserialize(&bytes) {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type fhe_sum_state: {e}"),
            );
        }
        OwnedVarlena::from_slice(&bytes).into_datum()
    }
}

c_functions! {
    /// fhe_vector_sum(fhe_vector): adds one vector (NULLs are skipped)
    encml_fhe_vector_sum_trans, pg_finfo_encml_fhe_vector_sum_trans => sum_trans;
    encml_fhe_vector_sum_combine, pg_finfo_encml_fhe_vector_sum_combine => sum_combine;
    encml_fhe_vector_sum_final, pg_finfo_encml_fhe_vector_sum_final => sum_final;
    encml_fhe_sum_state_in, pg_finfo_encml_fhe_sum_state_in => state_in;
    encml_fhe_sum_state_out, pg_finfo_encml_fhe_sum_state_out => state_out;
}

pgrx::extension_sql_file!(
    "../../sql/schema/fhe.sql",
    name = "fhe",
    requires = ["fhe_vector_type"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use encml_fhe::keys::generate;
    use encml_fhe::params::Encoding;
    use encml_fhe::vector::EncryptedVector;
    use pgrx::prelude::*;

    /// Client-side encryption (as the tool does), the SQL aggregate, client-side decryption.
    #[pg_test]
    fn client_encrypted_updates_sum_exactly_in_sql() {
        let (sk, pk) = generate();
        Spi::run_with_args(
            "SELECT encml.fhe_register_keyset('pgtest-fhe', $1)",
            &[pk.to_bytes().as_slice().into()],
        )
        .unwrap();
        Spi::run("CREATE TABLE pgtest_updates (u encml.fhe_vector)").unwrap();
        let enc = Encoding::for_sums(18, 6, 100).unwrap();
        let mut expected = vec![0f64; 300];
        for i in 0..25 {
            let v: Vec<f64> = (0..300)
                .map(|j| ((i * 37 + j * 11) % 4001) as f64 / 64.0 - 31.0)
                .collect();
            expected.iter_mut().zip(&v).for_each(|(t, x)| *t += x);
            let ct = EncryptedVector::encrypt(&pk, &v, enc).unwrap().to_bytes();
            Spi::run_with_args(
                "INSERT INTO pgtest_updates VALUES ($1::encml.fhe_vector)",
                &[ct.as_slice().into()],
            )
            .unwrap();
        }
        let sum =
            Spi::get_one::<Vec<u8>>("SELECT encml.fhe_vector_sum(u)::bytea FROM pgtest_updates")
                .unwrap()
                .unwrap();
        let sum = EncryptedVector::from_bytes(&sum).unwrap();
        assert_eq!(sum.terms, 25);
        assert_eq!(sum.decrypt(&sk).unwrap(), expected);
    }

    #[pg_test]
    fn key_sets_are_loaded_once_per_backend() {
        let (_, pk) = generate();
        let id = Spi::get_one_with_args::<pgrx::Uuid>(
            "SELECT encml.fhe_register_keyset('pgtest-fhe-cache', $1)",
            &[pk.to_bytes().as_slice().into()],
        )
        .unwrap()
        .unwrap();
        Spi::run("SET encml.fhe_client_functions = on").unwrap();
        let loads = || {
            Spi::get_one::<i64>("SELECT encml.fhe_keyset_loads()")
                .unwrap()
                .unwrap()
        };
        let before = loads();
        for _ in 0..3 {
            Spi::run_with_args(
                "SELECT encml.fhe_encrypt(ARRAY[1.5, -2]::float8[], $1)",
                &[id.into()],
            )
            .unwrap();
        }
        assert_eq!(loads() - before, 1);
    }
}
