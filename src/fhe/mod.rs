//! Homomorphic aggregation in the backend: the key-set catalog and its per-backend cache
//! (`keysets`), the aggregation rounds (`rounds`), the noise of differentially private round
//! sums (`dp_noise`) and the threads proofs are checked on (`workers`). The cryptography is in
//! `encml_fhe`, the noise's calibration and sampling in `encml_dp`.
pub mod dp_noise;
pub mod keysets;
pub mod rounds;
pub mod workers;

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
        // A proof that does not verify: the update is refused as data, whatever its cause.
        FheError::Invalid(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
    };
    raise(code, e.to_string())
}
