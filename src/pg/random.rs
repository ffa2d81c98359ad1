//! Nonces and other per-value randomness. A ChaCha20 CSPRNG per backend process, seeded from the
//! OS (getrandom) on first use *in that process*: the seed is tied to `MyProcPid`, so generator
//! state created in the postmaster (when the library is preloaded) or inherited by a forked
//! parallel worker is never used; the child reseeds before its first value.
//! Taking 12 bytes from getrandom per value would cost a system call per row.

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::cell::RefCell;

struct BackendRng {
    pid: i32,
    rng: ChaCha20Rng,
}

thread_local! {
    static RNG: RefCell<Option<BackendRng>> = const { RefCell::new(None) };
}

fn current_pid() -> i32 {
    // SAFETY: MyProcPid is set by Postgres in every process right after fork.
    let pid = unsafe { pgrx::pg_sys::MyProcPid };
    if pid == 0 {
        std::process::id() as i32
    } else {
        pid
    }
}

pub fn fill(buf: &mut [u8]) {
    let pid = current_pid();
    RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = !matches!(&*slot, Some(r) if r.pid == pid);
        if stale {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            if OsRng.try_fill_bytes(seed.as_mut()).is_err() {
                drop(slot);
                crate::pg::errors::raise_core(encml_core::Error::Random);
            }
            *slot = Some(BackendRng {
                pid,
                rng: ChaCha20Rng::from_seed(*seed),
            });
        }
        slot.as_mut().expect("seeded above").rng.fill_bytes(buf);
    });
}
