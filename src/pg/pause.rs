//! Test-only pause points, so that the crash tests (tests/crash/) kill a process at a known step
//! of an operation. PostgreSQL 15 has no injection points.
//!
//! The superuser-only setting `encml.test_pause_at` names a step, optionally with a count
//! (`reencrypt:500`: the 500th time this process reaches it). A process that reaches that step
//! logs `pg_encrypt_ml paused at "<step>"` and waits for the advisory lock `PAUSE_LOCK` (a
//! transaction-level lock on the bigint key, as `pg_advisory_xact_lock` takes), which the test
//! holds from another session; the test sees the waiter in `pg_locks` and kills it or the server.
//! Unset (the default), a pause point costs one thread-local read.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};

/// The advisory lock a paused process waits for (tests/crash/lib.sh holds it).
pub const PAUSE_LOCK: i64 = 7_370_001;

pub static TEST_PAUSE_AT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

thread_local! {
    /// The step and the count at which to pause, parsed by the assign hook.
    static TARGET: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// How often this process reached the target step.
    static REACHED: Cell<u64> = const { Cell::new(0) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign(newval: *const std::ffi::c_char, _extra: *mut std::ffi::c_void) {
    let value = if newval.is_null() {
        None
    } else {
        // SAFETY: Postgres passes the new value as a NUL-terminated string valid for the call.
        let s = unsafe { CStr::from_ptr(newval) }.to_string_lossy();
        let s = s.trim();
        (!s.is_empty()).then(|| match s.rsplit_once(':') {
            Some((step, n)) if n.parse::<u64>().is_ok_and(|n| n > 0) => {
                (step.to_string(), n.parse::<u64>().expect("checked"))
            }
            _ => (s.to_string(), 1),
        })
    };
    ARMED.with(|a| a.set(value.is_some()));
    REACHED.with(|r| r.set(0));
    TARGET.with(|t| *t.borrow_mut() = value);
}

pub fn register_guc() {
    // SAFETY: `assign` is a #[pg_guard] function that never raises; TEST_PAUSE_AT is 'static.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"encml.test_pause_at",
            c"Test only: a step of the extension's code at which a process waits (tests/crash).",
            c"The process logs the step and waits for an advisory lock the test holds. Never set \
              it in production.",
            &TEST_PAUSE_AT,
            GucContext::Suset,
            GucFlags::NO_SHOW_ALL | GucFlags::SUPERUSER_ONLY,
            None,
            Some(assign),
            None,
        );
    }
}

/// A pause point at `step` (see the module documentation).
pub fn point(step: &str) {
    if !ARMED.with(Cell::get) {
        return;
    }
    let hit = TARGET.with(|t| {
        let t = t.borrow();
        let Some((target, n)) = t.as_ref() else {
            return false;
        };
        if target != step {
            return false;
        }
        let reached = REACHED.with(|r| {
            r.set(r.get() + 1);
            r.get()
        });
        reached == *n
    });
    if !hit {
        return;
    }
    pgrx::log!("pg_encrypt_ml paused at \"{step}\"");
    // SAFETY: MyDatabaseId is set in every backend and worker connected to a database; the tag
    // is a local that LockAcquire copies; a transaction-level lock needs the current resource
    // owner, which every caller (inside a function call or a worker's transaction) has. The
    // call blocks until the test releases the lock or kills this process.
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: pg_sys::MyDatabaseId.to_u32(),
            locktag_field2: (PAUSE_LOCK >> 32) as u32,
            locktag_field3: PAUSE_LOCK as u32,
            locktag_field4: 1,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false);
    }
}
