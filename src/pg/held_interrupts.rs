//! Holding off query cancel, statement_timeout and termination for a few steps that must not be
//! cut apart (Postgres's HOLD_INTERRUPTS / RESUME_INTERRUPTS). Every `ereport` below ERROR checks
//! for interrupts when it returns, so even a LOG line can end the statement.

use pgrx::pg_sys;

/// Interrupts are held while this lives; pending ones are served at the next check after it
/// drops. Keep it to steps that finish quickly: nothing waits on other processes while held.
pub struct HeldInterrupts(());

impl HeldInterrupts {
    pub fn new() -> Self {
        // SAFETY: InterruptHoldoffCount is a backend-local counter read by
        // CHECK_FOR_INTERRUPTS on this, the backend's only Postgres thread.
        unsafe { pg_sys::InterruptHoldoffCount += 1 };
        HeldInterrupts(())
    }
}

impl Default for HeldInterrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HeldInterrupts {
    fn drop(&mut self) {
        // An ERROR resets the count to zero before it unwinds (errfinish): never go below.
        // SAFETY: as in `new`.
        unsafe {
            pg_sys::InterruptHoldoffCount = pg_sys::InterruptHoldoffCount.saturating_sub(1);
        }
    }
}
