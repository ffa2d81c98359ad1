//! Work inside a library that never returns to Postgres until it is done (tfhe-rs's `Sum` over
//! hundreds of ciphertexts runs for tens of seconds) cannot check for interrupts itself. It runs
//! on a helper thread while the backend waits for it and checks for interrupts every 20 ms, so
//! `statement_timeout`, `pg_cancel_backend` and `pg_terminate_backend` end the statement at
//! once. The helper thread touches no Postgres state; when the statement is cancelled it
//! finishes on its own and its result is dropped (its CPU is not reclaimed early: the library
//! offers no cancellation).

use crate::pg::errors::raise;
use pgrx::PgSqlErrorCode;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

/// `work()`, computed on a helper thread while this backend stays interruptible.
pub fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = channel();
    let spawned = std::thread::Builder::new()
        .name("encml-work".into())
        // tfhe-rs recurses deeply in its key switching; the default 2 MiB is tight.
        .stack_size(16 << 20)
        .spawn(move || {
            let _ = done.send(work());
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
            Err(RecvTimeoutError::Disconnected) => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "the worker thread failed (see the server log)",
            ),
        }
    }
}
