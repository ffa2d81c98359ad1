//! The backend's threads for proof work (verifying proofs of FHE updates, checking a CRS), and
//! rayon's global pool for the rest of tfhe-rs's work (`prepare_global_pool`).
//!
//! tfhe-rs spreads that work over rayon threads. The pool is the backend's own, made once with
//! every signal blocked (`pg::interruptible::with_signals_blocked`), so Postgres's signal
//! handlers run on the backend's thread only. The threads run pure Rust (no palloc, no
//! ereport); the backend's thread waits in `run`, and callers check for interrupts between the
//! pieces they hand out (a proof takes about 0.1 s to verify).

use crate::pg::interruptible::with_signals_blocked;
use std::sync::OnceLock;

/// The pool, made at first use (in a backend, never in the postmaster).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        with_signals_blocked(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("encml-proof-{i}"))
                .build()
        })
        .expect("the proof threads start")
    })
}

/// Runs `work` on the backend's proof threads and waits for it. `work` must not call into
/// Postgres; a panic in it is raised here, on the backend's thread.
pub fn run<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    pool().install(work)
}

/// Makes rayon's global pool, which tfhe-rs uses for the work not run through `run` (the uint32
/// path: decompressing a server key, integer operations, client-key functions), with every
/// signal blocked, before anything in this backend could make it lazily on the backend's thread
/// with Postgres's signals open (a SIGTERM or SIGALRM then landed on a pool thread, where
/// Postgres's handlers must never run). Call before any such work; once per backend.
pub fn prepare_global_pool() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        with_signals_blocked(|| {
            // An error means some code made the pool before: nothing to do then, and nothing
            // in this backend does (every uint32 entry point calls this first).
            let _ = rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("encml-fhe-{i}"))
                .build_global();
        })
    });
}
