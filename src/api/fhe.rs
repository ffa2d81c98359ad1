//! Homomorphic aggregation (docs/fhe.md): key sets, rounds, and the test-only in-database
//! client functions. The logic is in `crate::fhe` (the `fhe_vector_sum` aggregate in
//! `fhe::sum_aggregate`) and `encml_fhe`.

use crate::fhe::{keysets, rounds};
use crate::pg::errors::fhe_error;
use crate::pg::errors::{not_null, raise, raise_full};
use crate::pg::gucs::FHE_CLIENT_FUNCTIONS;
use crate::pg::varlena::{ByteaBytes, OwnedVarlena};
use crate::types::fhe_vector::{FheVector, FheVectorOut};
use crate::types::reg::RegRole;
use encml_fhe::keys::SecretKey;
use encml_fhe::params::Encoding;
use encml_fhe::vector::{parse_header, EncryptedVector};
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};

/// Registers an FHE key set from its public material (written by `pg_encrypt_ml-fhe keygen`).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_register_keyset(name: &str, public_material: ByteaBytes<'_>) -> Uuid {
    crate::pg::recovery::refuse_during_recovery("encml.fhe_register_keyset()");
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
    crate::pg::recovery::refuse_during_recovery("encml.fhe_register_keyset()");
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
    values: Vec<Option<f64>>,
    keyset: Uuid,
    value_bits: default!(i32, 16),
    frac_bits: default!(i32, 8),
    max_terms: default!(i32, 1000),
) -> FheVectorOut {
    require_client_functions("fhe_encrypt");
    let values = crate::pg::errors::no_nulls(values, "values");
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
    crate::pg::recovery::refuse_during_recovery("encml.fhe_open_round()");
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
    crate::pg::recovery::refuse_during_recovery("encml.fhe_submit()");
    rounds::submit(round, update.0)
}

/// Submits a proven update (`pg_encrypt_ml-fhe encrypt --crs`) to an open round; returns the
/// round's count (contributors). (A name of its own: an overload of `fhe_submit` would make a
/// call with a base64 literal ambiguous.)
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_submit_proven(round: i64, update: ByteaBytes<'_>) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.fhe_submit_proven()");
    rounds::submit(round, update.0)
}

/// Closes a round and computes its sum once (encml_fhe_admin); refuses below min_contributions.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_close_round(round: i64) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.fhe_close_round()");
    rounds::close(round, None)
}

/// Closes a proven round with a differentially private sum: discrete Gaussian noise for
/// (dp_epsilon, dp_delta) at the sensitivity the proofs bound, added to the encrypted sum; each
/// read of the sum is charged to the reader's privacy budget (encml_fhe_admin).
#[pg_extern(volatile, strict, parallel_unsafe, name = "fhe_close_round")]
fn fhe_close_round_dp(round: i64, dp_epsilon: f64, dp_delta: f64) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.fhe_close_round()");
    rounds::close(round, Some((dp_epsilon, dp_delta)))
}

/// The encrypted sum of a closed round (encml_fhe_decryptor).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn fhe_round_sum(round: i64) -> FheVectorOut {
    rounds::sum(round)
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
