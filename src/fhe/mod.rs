//! Homomorphic aggregation in the backend: the key-set catalog and its per-backend cache
//! (`keysets`), the aggregation rounds (`rounds`), the noise of differentially private round
//! sums (`dp_noise`), the `fhe_vector_sum` aggregate (`sum_aggregate`) and the threads proofs
//! are checked on (`workers`). The cryptography is in `encml_fhe`, the noise's calibration and
//! sampling in `encml_dp`.
pub mod dp_noise;
pub mod keysets;
pub mod rounds;
pub mod sum_aggregate;
pub mod workers;
