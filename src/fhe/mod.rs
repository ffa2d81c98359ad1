//! Homomorphic aggregation in the backend: the key-set catalog and its per-backend cache
//! (`keysets`) and the aggregation rounds (`rounds`). The cryptography is in `encml_fhe`.
pub mod keysets;
pub mod rounds;

use crate::pg::errors::raise;
use encml_fhe::FheError;
use pgrx::PgSqlErrorCode;

/// Raises an FHE error with its SQLSTATE.
pub fn fhe_error(e: FheError) -> ! {
    let code = match e {
        // Bytes a client handed in (bodies are checked when first read), as for core ciphertexts.
        FheError::Malformed(_) => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        FheError::Mismatch(_) | FheError::Duplicate => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        FheError::OutOfRange(_) => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
    };
    raise(code, e.to_string())
}
