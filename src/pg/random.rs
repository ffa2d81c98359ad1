//! Nonces and other per-value randomness: one `encml_core::nonce::ProcessRng` per backend,
//! keyed by `MyProcPid`, which Postgres sets in every process right after fork. State created in
//! the postmaster (preloaded library) or inherited by a parallel worker is reseeded before use.

use crate::pg::errors::OrRaise;
use encml_core::nonce::ProcessRng;
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<ProcessRng> = const { RefCell::new(ProcessRng::new()) };
}

fn current_pid() -> u32 {
    // SAFETY: a plain read of a global Postgres sets at process start.
    let pid = unsafe { pgrx::pg_sys::MyProcPid };
    if pid > 0 {
        pid as u32
    } else {
        std::process::id()
    }
}

pub fn fill(buf: &mut [u8]) {
    let pid = current_pid();
    RNG.with(|cell| cell.borrow_mut().fill(pid, buf)).or_raise();
}
