//! The parameter set and the fixed-point encoding.
//!
//! LWE dimension 2048 with TUniform(17) noise on a 2^64 modulus: the compact public-key
//! encryption parameters tfhe-rs publishes as 128-bit secure (`PARAM_PKE_MESSAGE_2_CARRY_2_KS_
//! PBS_TUNIFORM_2M128`; TUniform(17) is its minimum secure bound at n = 2048). The numbers are
//! copied here so the vector path needs only `core_crypto`; a test checks them against tfhe-rs's
//! published set whenever `shortint` is compiled (the `uint32` feature).
//!
//! Encoding: a value x with `frac_bits` fractional bits becomes the integer round(x·2^frac_bits),
//! placed in the top `message_bits` of the 64-bit plaintext (Δ = 2^(64 − message_bits)). A sum of
//! N values needs `value_bits + ceil(log2 N)` message bits; the noise of one update has a
//! standard deviation of about 2^22.0 (see `fresh_noise_log2`) and adds up as sqrt(N), so with
//! `message_bits` = m the sum decodes correctly while 2^(63 − m) exceeds 13.1·2^22.0·sqrt(N)
//! (failure probability 2^-128 per coefficient). For N = 1,000 that allows m ≤ 32 (e.g. 22-bit
//! values), for N = 10,000 m ≤ 30 (16-bit values).

/// LWE dimension of the compact public key (and the number of values one mask serves).
pub const LWE_DIMENSION: usize = 2048;
/// TUniform bound: noise drawn uniformly from [-2^17, 2^17] (with halves at the ends).
pub const NOISE_BOUND_LOG2: u32 = 17;

/// How values are encoded: each value has `value_bits` (sign included, `frac_bits` of them
/// fractional); sums have `message_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub value_bits: u8,
    pub frac_bits: u8,
    pub message_bits: u8,
}

/// log2 of the standard deviation of the noise of one encrypted update: the difference of two
/// compact public-key encryptions (see `vector::EncryptedVector::encrypt`). Per value:
/// (r1 − r2)·e_pk with var(r1 − r2) = 1/2 over n terms, two mask noises e1 against the binary
/// key (n/2 terms each), two body noises: σ²·(3n/2 + 2), σ² = (2^(2b+1) + 1)/6 for TUniform(b).
/// Zero-mean and independent between updates, so a sum of N grows as sqrt(N).
pub fn fresh_noise_log2() -> f64 {
    let b = NOISE_BOUND_LOG2 as f64;
    let var = ((2f64).powf(2.0 * b + 1.0) + 1.0) / 6.0;
    0.5 * (var * (1.5 * LWE_DIMENSION as f64 + 2.0)).log2()
}

impl Encoding {
    /// An encoding that sums up to `max_terms` values of magnitude below 2^(value_bits − 1) (in
    /// fixed point, fractional bits included) with failure probability at most 2^-128 per value.
    pub fn for_sums(
        value_bits: u8,
        frac_bits: u8,
        max_terms: u64,
    ) -> Result<Self, crate::FheError> {
        let growth = 64 - (max_terms.max(1) - 1).leading_zeros() as u8; // ceil(log2 N)
        let message_bits = value_bits + growth;
        let enc = Encoding {
            value_bits,
            frac_bits,
            message_bits,
        };
        enc.check(max_terms)?;
        Ok(enc)
    }

    /// Whether the noise of a sum of `terms` fresh ciphertexts stays below half a step.
    pub fn check(&self, terms: u64) -> Result<(), crate::FheError> {
        if self.value_bits == 0
            || self.value_bits > self.message_bits
            || self.message_bits > 60
            || self.frac_bits >= self.value_bits
        {
            return Err(crate::FheError::OutOfRange(format!(
                "message_bits {} / frac_bits {} are not a usable encoding",
                self.message_bits, self.frac_bits
            )));
        }
        // Headroom: a sum of more than 2^(message_bits − value_bits) values can leave the
        // message space and wrap around.
        let headroom = self.message_bits - self.value_bits;
        if terms > 1u64 << headroom {
            return Err(crate::FheError::OutOfRange(format!(
                "a sum of {terms} values of {} bits does not fit {} message bits (at most {} values)",
                self.value_bits,
                self.message_bits,
                1u64 << headroom
            )));
        }
        let noise = fresh_noise_log2() + 0.5 * (terms.max(1) as f64).log2() + 13.1f64.log2();
        let half_step = 63.0 - self.message_bits as f64;
        if noise >= half_step {
            return Err(crate::FheError::OutOfRange(format!(
                "a sum of {terms} values with {} message bits could be wrong: noise 2^{noise:.1} \
                 against half a step of 2^{half_step}",
                self.message_bits
            )));
        }
        Ok(())
    }

    /// Whether a sum of `terms` values plus added noise that stays within ±`noise_bound`
    /// (fixed-point units; `noise_bound` is the tail bound of the noise distribution at the
    /// accepted failure probability) fits the message space, the noise arriving as one more
    /// encryption: the check of a differentially private round sum.
    pub fn check_noisy_sum(&self, terms: u64, noise_bound: f64) -> Result<(), crate::FheError> {
        self.check(terms + 1)?;
        let reach = terms as f64 * (1u64 << (self.value_bits - 1)) as f64 + noise_bound;
        let room = (1u64 << (self.message_bits - 1)) as f64;
        if reach >= room {
            return Err(crate::FheError::OutOfRange(format!(
                "a sum of {terms} values of {} bits plus noise up to {noise_bound:.0} needs {} \
                 message bits; the round has {}",
                self.value_bits,
                reach.log2().floor() as u32 + 2,
                self.message_bits
            )));
        }
        Ok(())
    }

    fn delta_log2(&self) -> u32 {
        64 - self.message_bits as u32
    }

    /// The plaintext word of `x`, or an error if it does not fit the message bits.
    pub fn encode(&self, x: f64) -> Result<u64, crate::FheError> {
        Ok((self.fixed_point(x)? as u64) << self.delta_log2())
    }

    /// round(x·2^frac_bits), or an error unless it lies in [−2^(value_bits−1), 2^(value_bits−1)).
    pub fn fixed_point(&self, x: f64) -> Result<i64, crate::FheError> {
        if !x.is_finite() {
            return Err(crate::FheError::OutOfRange("not a finite number".into()));
        }
        let scaled = (x * (1u64 << self.frac_bits) as f64).round();
        let limit = (1i64 << (self.value_bits - 1)) as f64;
        if scaled >= limit || scaled < -limit {
            return Err(crate::FheError::OutOfRange(format!(
                "{x} needs more than {} bits at {} fractional bits",
                self.value_bits, self.frac_bits
            )));
        }
        Ok(scaled as i64)
    }

    /// Δ = 2^(64 − message_bits): the plaintext word of the integer 1.
    pub fn delta(&self) -> u64 {
        1u64 << self.delta_log2()
    }

    /// The value a (noisy) plaintext word of a sum stands for, rounded to the nearest step.
    pub fn decode(&self, word: u64) -> f64 {
        let shift = self.delta_log2();
        let rounded = (word as i64).wrapping_add(1i64 << (shift - 1)) >> shift;
        rounded as f64 / (1u64 << self.frac_bits) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_matches_the_documented_limits() {
        assert!(
            (fresh_noise_log2() - 22.0).abs() < 0.1,
            "{}",
            fresh_noise_log2()
        );
        assert!(Encoding::for_sums(22, 8, 1000).is_ok());
        assert!(Encoding::for_sums(23, 8, 1000).is_err());
        assert!(Encoding::for_sums(16, 8, 10_000).is_ok());
        assert!(Encoding::for_sums(17, 8, 10_000).is_err());
    }

    #[test]
    fn encoding_round_trips_and_refuses_what_does_not_fit() {
        let e = Encoding::for_sums(20, 8, 1000).unwrap();
        for x in [0.0, 1.5, -1.5, 2047.99609375, -2048.0, 0.00390625] {
            // 20 bits with 8 fractional: [-2048, 2048) in steps of 1/256.
            assert_eq!(e.decode(e.encode(x).unwrap()), x);
        }
        assert!(e.encode(1e9).is_err());
        assert!(e.encode(f64::NAN).is_err());
    }
}

/// With tfhe-rs's shortint module compiled (the `uint32` feature), check the copied numbers
/// against the parameter set tfhe-rs publishes.
#[cfg(all(test, feature = "uint32"))]
mod published {
    use super::*;
    use tfhe::core_crypto::prelude::DynamicDistribution;
    use tfhe::shortint::parameters::PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 as PKE;

    #[test]
    fn parameters_are_tfhe_rs_published_128_bit_pke_parameters() {
        assert_eq!(PKE.encryption_lwe_dimension.0, LWE_DIMENSION);
        assert_eq!(
            PKE.encryption_noise_distribution,
            DynamicDistribution::new_t_uniform(NOISE_BOUND_LOG2)
        );
        assert!(PKE.ciphertext_modulus.is_native_modulus());
    }
}
