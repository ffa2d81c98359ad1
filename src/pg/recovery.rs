//! A hot standby only reads. Every operation that must write (a catalog change, a charge to the
//! privacy ledger, a counted encryption, a seal) refuses there before it does anything, with
//! PostgreSQL's own error for commands a standby cannot run: SQLSTATE 25006
//! (read_only_sql_transaction), "cannot execute OPERATION during recovery". Without the check the
//! first write would fail deep inside with an internal error (pgrx's SPI asks for a transaction
//! id, which a standby cannot assign: XX000), after reads that may already have been charged or
//! logged as if the operation had run.

use pgrx::pg_sys;

/// Whether this server is a standby (or a primary still replaying WAL after a crash).
pub fn in_recovery() -> bool {
    // SAFETY: reads shared recovery state; callable in any backend at any time.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// Refuses `operation` (for example "encml.create_key()") on a hot standby with SQLSTATE 25006.
pub fn refuse_during_recovery(operation: &str) {
    if !in_recovery() {
        return;
    }
    let name = std::ffi::CString::new(operation).unwrap_or_else(|_| c"this operation".into());
    // SAFETY: a NUL-terminated string that outlives the call; PreventCommandDuringRecovery
    // raises an ERROR during recovery (unwinding through pgrx's FFI guard) and returns otherwise.
    unsafe { pg_sys::PreventCommandDuringRecovery(name.as_ptr()) };
}
