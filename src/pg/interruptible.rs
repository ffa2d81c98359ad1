//! Work inside a library that never returns to Postgres until it is done (tfhe-rs's `Sum` over
//! hundreds of ciphertexts runs for tens of seconds) cannot check for interrupts itself. It runs
//! on a helper thread while the backend waits for it and checks for interrupts every 20 ms, so
//! `statement_timeout`, `pg_cancel_backend` and `pg_terminate_backend` end the statement at
//! once. The helper thread touches no Postgres state; when the statement is cancelled it
//! finishes on its own and its result is dropped (its CPU is not reclaimed early: the library
//! offers no cancellation).
//!
//! Threads of ours, and the threads the library starts from them (rayon's pool), are created
//! with every signal blocked: a thread inherits its creator's mask, and a process-directed signal
//! goes to any thread that does not block it, where Postgres's handlers (cancel, terminate,
//! latch) would run off the backend's thread, racing with it.

use crate::pg::errors::raise;
use pgrx::PgSqlErrorCode;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

/// `work()`, computed on a helper thread while this backend stays interruptible.
pub fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = channel();
    let spawned = with_signals_blocked(|| {
        std::thread::Builder::new()
            .name("encml-work".into())
            // tfhe-rs recurses deeply in its key switching; the default 2 MiB is tight.
            .stack_size(16 << 20)
            .spawn(move || {
                let _ = done.send(work());
            })
    });
    if let Err(e) = spawned {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
            format!("could not start a worker thread: {e}"),
        );
    }
    loop {
        match result.recv_timeout(Duration::from_millis(20)) {
            Ok(value) => return value,
            Err(RecvTimeoutError::Timeout) => {
                pgrx::check_for_interrupts!();
            }
            Err(RecvTimeoutError::Disconnected) => {
                crate::pg::errors::internal("the worker thread failed (see the server log)")
            }
        }
    }
}

/// `create()` run with every signal blocked on this thread, so that the threads it starts
/// inherit a mask that blocks them all; the backend's own mask is restored afterwards.
pub fn with_signals_blocked<T>(create: impl FnOnce() -> T) -> T {
    // SAFETY: sigfillset initialises the set; pthread_sigmask changes this thread's mask only,
    // and the previous mask is saved to be restored below.
    let previous = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        previous
    };
    let created = create();
    // SAFETY: restores the mask saved above, on the same thread.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    created
}
