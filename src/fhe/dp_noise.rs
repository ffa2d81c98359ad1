//! The noise of differentially private round sums (docs/fhe.md, "Differentially private round
//! sums"): `fhe_close_round(round, dp_epsilon, dp_delta)` adds discrete Gaussian noise to every
//! value of the encrypted sum, encrypted under the round's public key and added to the sum
//! homomorphically, so the database never sees the sum and the decryptor never sees the noise.
//!
//! Sensitivity: the proofs bound each value by B = 2^(value_bits − 1) (fixed-point units), so one
//! contributor's update, added or removed, moves the sum by at most B·√d in L2 norm; nothing
//! bounds the norm more tightly. The noise is calibrated to that (`encml_dp::vector_noise`), and
//! the round's message bits must hold the sum of the updates summed plus the noise's tail bound
//! (all values within it but with probability 2^-40), or the close is refused before anything
//! changes.

use crate::fhe::rounds::Round;
use crate::pg::errors::raise_full;
use encml_dp::mechanism::Loss;
use encml_dp::vector_noise::{sample, tail_bound, vector_sigma};
use encml_fhe::params::Encoding;
use encml_fhe::vector::EncryptedVector;
use pgrx::PgSqlErrorCode;

/// The noise a round's sum gets: its privacy loss and its standard deviation.
pub struct Noise {
    pub epsilon: f64,
    pub delta: f64,
    /// In fixed-point units (a value's `frac_bits` included).
    sigma: f64,
}

/// Calibrates the noise of round `round` for (epsilon, delta) and checks that it fits; refuses
/// (22023) otherwise. Changes nothing.
pub(crate) fn plan(round: i64, r: &Round, epsilon: f64, delta: f64) -> Noise {
    let refuse = |message: String, hint: Option<String>| -> ! {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            message,
            None,
            hint,
        )
    };
    if !r.proven {
        refuse(
            format!("FHE round {round} takes unproven updates: its sum cannot be made differentially private"),
            Some("The proofs bound each value, and with it what one contributor can change (the sensitivity); without them one update can move the sum by any amount. Open a proven round.".into()),
        );
    }
    let bound = (1u64 << (r.encoding.value_bits - 1)) as f64;
    let sensitivity = bound * (r.dim as f64).sqrt();
    let sigma = vector_sigma(sensitivity, Loss::gaussian(epsilon, delta))
        .unwrap_or_else(|e| refuse(format!("dp_epsilon, dp_delta: {e}"), None));
    let tail = tail_bound(sigma, r.dim as usize);
    if let Err(e) = r.encoding.check_noisy_sum(r.count as u64, tail) {
        refuse(
            format!("FHE round {round}: the noise for epsilon {epsilon}, delta {delta} could wrap the sum: {e}"),
            Some(format!(
                "Its standard deviation would be {:.4} (in values; L2 sensitivity {:.1}). Use a larger dp_epsilon or dp_delta, or a key set whose CRS leaves more message bits (pg_encrypt_ml-fhe keygen --proofs --max-contributions: each doubling adds one).",
                sigma / scale(&r.encoding),
                sensitivity / scale(&r.encoding)
            )),
        );
    }
    Noise {
        epsilon,
        delta,
        sigma,
    }
}

fn scale(e: &Encoding) -> f64 {
    (1u64 << e.frac_bits) as f64
}

impl Noise {
    /// The standard deviation in values (what a decrypted sum's values carry).
    pub fn sigma_values(&self, e: &Encoding) -> f64 {
        self.sigma / scale(e)
    }

    /// The encrypted sum `total` (the bytes of an `fhe_vector`) with fresh noise added: drawn
    /// here, encrypted under the round's public key, added, and forgotten.
    pub(crate) fn add_to(&self, r: &Round, total: &[u8]) -> Vec<u8> {
        let mut sum =
            EncryptedVector::from_bytes(total).unwrap_or_else(|e| crate::pg::errors::fhe_error(e));
        let z = zeroize::Zeroizing::new(sample(r.dim as usize, self.sigma).unwrap_or_else(|e| {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("no noise can be drawn for this round's dp_epsilon and dp_delta: {e}"),
                None,
                None,
            )
        }));
        let key = crate::fhe::keysets::vector_public_key(r.keyset.as_bytes());
        let noise = EncryptedVector::encrypt_single_fixed_point(
            &key,
            &z,
            sum.encoding,
            sum.scheme.chunk() as u32,
        )
        .unwrap_or_else(|e| crate::pg::errors::fhe_error(e));
        sum.add_assign(&noise)
            .unwrap_or_else(|e| crate::pg::errors::fhe_error(e));
        sum.to_bytes()
    }
}
