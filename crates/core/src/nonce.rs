//! Per-process randomness for nonces. A ChaCha20 CSPRNG seeded from the OS (getrandom) on first
//! use in a process, and reseeded whenever the caller reports a different process id: a generator
//! inherited through fork (from the postmaster when the library is preloaded, or by any child)
//! is never used, so two processes never produce the same stream. One getrandom call per value
//! would cost a system call per row; this costs one per process.

use crate::error::{Error, Result};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use zeroize::Zeroizing;

#[derive(Clone, Default)]
pub struct ProcessRng {
    state: Option<(u32, ChaCha20Rng)>,
}

impl ProcessRng {
    pub const fn new() -> Self {
        ProcessRng { state: None }
    }

    /// Fills `buf` with random bytes; `pid` is the id of the calling process.
    pub fn fill(&mut self, pid: u32, buf: &mut [u8]) -> Result<()> {
        if !matches!(&self.state, Some((seeded_for, _)) if *seeded_for == pid) {
            let mut seed = Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(seed.as_mut())
                .map_err(|_| Error::Random)?;
            self.state = Some((pid, ChaCha20Rng::from_seed(*seed)));
        }
        self.state.as_mut().expect("seeded above").1.fill_bytes(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_copy_does_not_repeat_the_parent_stream() {
        let mut parent = ProcessRng::new();
        let mut first = [0u8; 12];
        parent.fill(100, &mut first).unwrap();
        // fork(): the child starts with a byte-for-byte copy of the parent's generator.
        let mut child = parent.clone();
        let (mut p, mut c) = ([0u8; 12], [0u8; 12]);
        parent.fill(100, &mut p).unwrap();
        child.fill(101, &mut c).unwrap();
        assert_ne!(p, c, "child reused the inherited generator state");
        // The same process keeps one stream (no reseed per call).
        let mut again = parent.clone();
        let (mut x, mut y) = ([0u8; 12], [0u8; 12]);
        parent.fill(100, &mut x).unwrap();
        again.fill(100, &mut y).unwrap();
        assert_eq!(x, y);
    }

    #[test]
    fn nonces_do_not_repeat_within_a_process() {
        let mut rng = ProcessRng::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let mut n = [0u8; 12];
            rng.fill(7, &mut n).unwrap();
            assert!(seen.insert(n));
        }
    }
}
