//! Scalar encrypted arithmetic (docs/fhe.md): fhe_add, fhe_sum, fhe_compare on fhe_uint32 under
//! a registered uint32 key set, and the test-only in-database client functions.

use crate::api::fhe::require_client_functions;
use crate::fhe::keysets;
use crate::pg::aggregate::{state_at, Aggregate};
use crate::pg::c_functions;
use crate::pg::errors::fhe_error;
use crate::pg::errors::raise;
use crate::pg::varlena::{ByteaBytes, OwnedVarlena};
use crate::types::fhe_uint32::{FheBool, FheBoolOut, FheUint32, FheUint32Out};
use encml_fhe::uint32::{check_value, ClientKeySet, Cmp, Operand, ServerKeySet};
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::rc::Rc;

/// The server key of the key set `bytes` (an fhe_uint32) is under.
fn server_key_of(bytes: &[u8]) -> Rc<ServerKeySet> {
    crate::fhe::workers::prepare_global_pool();
    let id = check_value(bytes, true).unwrap_or_else(|e| fhe_error(e));
    keysets::uint32_server_key(&id)
}

fn clear_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{v} is not a 32-bit unsigned integer (0 to 4294967295)"),
        )
    })
}

fn uint_out(bytes: Vec<u8>) -> FheUint32Out {
    FheUint32Out(OwnedVarlena::from_slice(&bytes))
}

/// a + b, wrapping at 2^32 like FheUint32.
#[pg_extern(name = "fhe_add", stable, strict, parallel_restricted)]
fn fhe_add(a: FheUint32<'_>, b: FheUint32<'_>) -> FheUint32Out {
    let sk = server_key_of(a.0);
    uint_out(
        sk.add(a.0, Operand::Encrypted(b.0))
            .unwrap_or_else(|e| fhe_error(e)),
    )
}

/// a + a clear value, wrapping at 2^32.
#[pg_extern(name = "fhe_add", stable, strict, parallel_restricted)]
fn fhe_add_clear(a: FheUint32<'_>, b: i64) -> FheUint32Out {
    let sk = server_key_of(a.0);
    uint_out(
        sk.add(a.0, Operand::Clear(clear_u32(b)))
            .unwrap_or_else(|e| fhe_error(e)),
    )
}

fn comparison(op: &str) -> Cmp {
    match op {
        "=" => Cmp::Eq,
        "<>" | "!=" => Cmp::Ne,
        "<" => Cmp::Lt,
        "<=" => Cmp::Le,
        ">" => Cmp::Gt,
        ">=" => Cmp::Ge,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown comparison \"{op}\": use =, <>, <, <=, > or >="),
        ),
    }
}

/// An encrypted boolean: a op b, op one of =, <>, <, <=, >, >=.
#[pg_extern(name = "fhe_compare", stable, strict, parallel_restricted)]
fn fhe_compare(a: FheUint32<'_>, op: &str, b: FheUint32<'_>) -> FheBoolOut {
    let sk = server_key_of(a.0);
    let r = sk.compare(a.0, comparison(op), Operand::Encrypted(b.0));
    FheBoolOut(OwnedVarlena::from_slice(
        &r.unwrap_or_else(|e| fhe_error(e)),
    ))
}

/// An encrypted boolean: a op a clear value.
#[pg_extern(name = "fhe_compare", stable, strict, parallel_restricted)]
fn fhe_compare_clear(a: FheUint32<'_>, op: &str, b: i64) -> FheBoolOut {
    let sk = server_key_of(a.0);
    let r = sk.compare(a.0, comparison(op), Operand::Clear(clear_u32(b)));
    FheBoolOut(OwnedVarlena::from_slice(
        &r.unwrap_or_else(|e| fhe_error(e)),
    ))
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): a fresh uint32 key set: the server
/// material to register and the client key, which has then been inside the server.
#[pg_extern(volatile, parallel_restricted)]
fn fhe_keygen_uint32(
) -> TableIterator<'static, (name!(server_material, Vec<u8>), name!(client_key, Vec<u8>))> {
    require_client_functions("fhe_keygen_uint32");
    crate::fhe::workers::prepare_global_pool();
    let (ck, material) = encml_fhe::uint32::generate();
    TableIterator::once((material, ck.to_bytes().to_vec()))
}

fn client_key(bytes: &[u8]) -> ClientKeySet {
    crate::fhe::workers::prepare_global_pool();
    ClientKeySet::from_bytes(bytes).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "not an FHE client key of this format",
        )
    })
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): encrypts with a client key passed in.
#[pg_extern(volatile, strict, parallel_restricted)]
fn fhe_encrypt_uint32(value: i64, client_key_bytes: ByteaBytes<'_>) -> FheUint32Out {
    require_client_functions("fhe_encrypt_uint32");
    let v = clear_u32(value);
    uint_out(client_key(client_key_bytes.0).encrypt(v))
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts with a client key passed in.
#[pg_extern(stable, strict, parallel_restricted)]
fn fhe_decrypt_uint32(value: FheUint32<'_>, client_key_bytes: ByteaBytes<'_>) -> i64 {
    require_client_functions("fhe_decrypt_uint32");
    client_key(client_key_bytes.0)
        .decrypt(value.0)
        .unwrap_or_else(|e| fhe_error(e)) as i64
}

/// TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts an encrypted boolean.
#[pg_extern(stable, strict, parallel_restricted)]
fn fhe_decrypt_bool(value: FheBool<'_>, client_key_bytes: ByteaBytes<'_>) -> bool {
    require_client_functions("fhe_decrypt_bool");
    client_key(client_key_bytes.0)
        .decrypt_bool(value.0)
        .unwrap_or_else(|e| fhe_error(e))
}

// ---- fhe_sum(fhe_uint32): collects the ciphertexts, sums them once with tfhe-rs's parallel
// Sum in the final function (one carry propagation for all, instead of one per addition). ----

/// The collected ciphertexts (serialized, as stored).
#[derive(Default)]
struct Collected(Vec<Vec<u8>>);

const FHE_SUM: Aggregate = Aggregate {
    name: "fhe_sum",
    window_ok: true,
};

/// # Safety
/// Only as the C function `encml_fhe_sum_trans` (`c_functions!`): `fcinfo` is the call's,
/// (internal, fhe_uint32) as declared below.
unsafe fn sum_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract). add_bytes checks the aggregate context
    // and makes the state there on the first row; later, argument 0 is that Collected (only
    // superusers create aggregates over `internal`); argument 1 is an fhe_uint32 varlena.
    unsafe {
        FHE_SUM.add_bytes(fcinfo, |s: &mut Collected, bytes| {
            check_value(bytes, true).unwrap_or_else(|e| fhe_error(e));
            s.0.push(bytes.to_vec());
        })
    }
}

/// # Safety
/// Only as the C function `encml_fhe_sum_combine` (`c_functions!`): `fcinfo` is the call's.
unsafe fn sum_combine(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); `combine` checks the aggregate context,
    // and non-NULL arguments are two distinct Collected states of fhe_sum in it.
    unsafe { FHE_SUM.combine(fcinfo, |a: &mut Collected, b| a.0.extend(b.0)) }
}

/// Partial state: `count u32 | (length u32 | bytes) × count`, little-endian.
///
/// # Safety
/// Only as the C function `encml_fhe_sum_serialize` (`c_functions!`): `fcinfo` is the call's.
unsafe fn sum_serialize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate; the
    // function is STRICT, so argument 0 is the non-NULL Collected state that sum_trans or
    // sum_deserialize made in the aggregate context. It is only read.
    unsafe {
        FHE_SUM.context(fcinfo);
        let s = state_at::<Collected>(fcinfo, 0);
        let mut out = Vec::with_capacity(4 + s.0.iter().map(|v| 4 + v.len()).sum::<usize>());
        out.extend_from_slice(&(s.0.len() as u32).to_le_bytes());
        for v in &s.0 {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        OwnedVarlena::from_slice(&out).into_datum()
    }
}

/// # Safety
/// Only as the C function `encml_fhe_sum_deserialize` (`c_functions!`): `fcinfo` is the call's.
unsafe fn sum_deserialize(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT, so argument 0 is
    // a non-NULL bytea. new_state checks the aggregate context and allocates the state there,
    // dropped only when that context is deleted, so the returned pointer outlives the call.
    unsafe {
        let bytes: &[u8] = pg_getarg(fcinfo, 0).expect("STRICT");
        let corrupt = || -> ! {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                "fhe_sum: malformed partial state",
            )
        };
        let read_u32 = |at: usize| -> usize {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
                .unwrap_or_else(|| corrupt())
        };
        let count = read_u32(0);
        let mut at = 4;
        let mut out = Collected(Vec::with_capacity(count.min(bytes.len() / 4)));
        for _ in 0..count {
            let len = read_u32(at);
            let v = bytes.get(at + 4..at + 4 + len).unwrap_or_else(|| corrupt());
            out.0.push(v.to_vec());
            at += 4 + len;
        }
        if at != bytes.len() {
            corrupt();
        }
        FHE_SUM.new_state(fcinfo, out)
    }
}

/// # Safety
/// Only as the C function `encml_fhe_sum_final` (`c_functions!`): `fcinfo` is the call's.
unsafe fn sum_final(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate; argument
    // 0 is read as the Collected state only when not NULL, and only read (a window aggregate
    // may finalize the same state again). The helper thread gets owned copies only, no
    // Postgres pointers.
    unsafe {
        FHE_SUM.context(fcinfo);
        if pg_arg_is_null(fcinfo, 0) || state_at::<Collected>(fcinfo, 0).0.is_empty() {
            return pg_return_null(fcinfo);
        }
        let s = state_at::<Collected>(fcinfo, 0);
        let sk = (*server_key_of(&s.0[0])).clone();
        // Tens of seconds for hundreds of values, in one call of tfhe-rs: on a helper thread,
        // so that a timeout or a cancel ends the statement at once.
        let values = s.0.clone();
        let total =
            crate::pg::interruptible::run(move || sk.sum(values.iter().map(|v| v.as_slice())))
                .unwrap_or_else(|e| fhe_error(e));
        OwnedVarlena::from_slice(&total).into_datum()
    }
}

c_functions! {
    /// fhe_sum(fhe_uint32): collects one ciphertext (NULLs are skipped)
    encml_fhe_sum_trans, pg_finfo_encml_fhe_sum_trans => sum_trans;
    encml_fhe_sum_combine, pg_finfo_encml_fhe_sum_combine => sum_combine;
    encml_fhe_sum_serialize, pg_finfo_encml_fhe_sum_serialize => sum_serialize;
    encml_fhe_sum_deserialize, pg_finfo_encml_fhe_sum_deserialize => sum_deserialize;
    encml_fhe_sum_final, pg_finfo_encml_fhe_sum_final => sum_final;
}

extension_sql!(
    r#"
CREATE FUNCTION fhe_sum_trans(internal, fhe_uint32) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_trans';
CREATE FUNCTION fhe_sum_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_combine';
CREATE FUNCTION fhe_sum_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_serialize';
CREATE FUNCTION fhe_sum_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_deserialize';
CREATE FUNCTION fhe_sum_final(internal) RETURNS fhe_uint32
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_final';
CREATE AGGREGATE fhe_sum(fhe_uint32) (
    SFUNC = fhe_sum_trans, STYPE = internal, FINALFUNC = fhe_sum_final,
    COMBINEFUNC = fhe_sum_combine, SERIALFUNC = fhe_sum_serialize,
    DESERIALFUNC = fhe_sum_deserialize, PARALLEL = SAFE
);
"#,
    name = "fhe_sum",
    requires = ["fhe_uint32_type"],
);
