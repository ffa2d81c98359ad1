//! Brute-force login lockout (`encml_core::lockout` in shared memory), through Postgres's
//! ClientAuthentication_hook (`hooks::client_authentication`, which calls `observe` and `act`): it
//! runs after the password exchange and before the client hears
//! the result, in a backend that has no database yet. So the hook only counts under a lock,
//! writes the server log, queues an event for the audit log (`queue`) and, for a locked pair,
//! ends the connection with FATAL whatever the password was.
//!
//! The hook must never fail: any ERROR here becomes FATAL for every login (superusers too), so
//! it allocates nothing but the log message and unwraps nothing.

use crate::pg::errors::raise;
use crate::pg::roles::{caller, SECURITY_ADMIN};
use crate::security::{gucs, queue};
use encml_core::lockout::{Outcome, Pair, Policy, Table};
use pgrx::pg_sys::libpq::be::Port;
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, PgSqlErrorCode};
use std::net::IpAddr;

/// (role, address) pairs tracked at once; a full table evicts the least recently seen unlocked
/// pair, and a table full of locked pairs leaves new pairs untracked (counted in metrics).
pub const AUTH_SLOTS: usize = 1024;

pub struct AuthTable(pub Table<AUTH_SLOTS>);
// SAFETY: plain old data (encml_core::lockout's Table: fixed arrays of Copy integers, bools and
// byte arrays), no pointers and no Drop, so every process sees the same valid bytes; it is
// initialized with EMPTY by pg_shmem_init! and only reached through AUTH_TABLE's LWLock.
unsafe impl PGRXSharedMemory for AuthTable {}
impl AuthTable {
    pub const EMPTY: AuthTable = AuthTable(Table::EMPTY);
}

// SAFETY: PgLwLock::new asks for a name no other lock uses: the extension's other locks are
// "... key use", "... event queue" and "... decrypt rates".
pub static AUTH_TABLE: PgLwLock<AuthTable> =
    unsafe { PgLwLock::new(c"pg_encrypt_ml auth lockout") };

pub fn policy() -> Policy {
    Policy {
        max_failures: gucs::MAX_AUTH_FAILURES.get().max(0) as u32,
        window: gucs::AUTH_FAILURE_WINDOW.get() as i64 * 1_000_000,
        lockout: gucs::AUTH_LOCKOUT.get() as i64 * 1_000_000,
    }
}

pub fn now() -> i64 {
    // SAFETY: GetCurrentTimestamp takes no arguments and only reads the clock; it cannot ERROR.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

pub fn addr_text(addr: Option<IpAddr>) -> String {
    addr.map_or_else(|| "local".to_string(), |a| a.to_string())
}

/// What a login attempt meant for its (role, address) pair, observed before the previous hook
/// runs; None for a client that hung up (psql asking for the password first is no failure).
///
/// # Safety
/// `port` is NULL or the connection's Port, as Postgres passes it to ClientAuthentication_hook.
pub unsafe fn observe(port: *mut Port, status: i32) -> Option<(Pair, Outcome)> {
    if status == pg_sys::STATUS_EOF || port.is_null() {
        return None;
    }
    // SAFETY: `port` is tested for NULL above; otherwise it is the connection's Port, which
    // the postmaster allocated and which lives as long as the backend.
    let port = unsafe { &*port };
    let role = if port.user_name.is_null() {
        &[][..]
    } else {
        // SAFETY: user_name is tested for NULL above; otherwise it is the startup packet's
        // NUL-terminated role name, kept in the Port for the life of the backend.
        unsafe { std::ffi::CStr::from_ptr(port.user_name) }.to_bytes()
    };
    let addr = crate::pg::client_address::of_port(port);
    let pair = Pair::new(role, addr);
    let outcome = AUTH_TABLE.exclusive().0.observe(
        &pair,
        status == pg_sys::STATUS_OK as i32,
        now(),
        &policy(),
    );
    Some((pair, outcome))
}

/// Acts on what `observe` found, after the previous hook ran: a new lockout becomes an event,
/// a locked pair is refused (FATAL), a full table is reported.
pub fn act((pair, outcome): (Pair, Outcome)) {
    let role = String::from_utf8_lossy(pair.role()).into_owned();
    let addr = addr_text(pair.addr());
    match outcome {
        Outcome::NewlyLocked { failures, until } => {
            let until = timestamp_text(until);
            queue::push_event(
                "auth_lockout",
                &role,
                pair.addr(),
                serde_json::json!({ "role": role, "client_addr": addr, "failures": failures,
                                    "locked_until": until }),
            );
        }
        Outcome::Locked { .. } => {
            ereport!(
                FATAL,
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                format!("too many failed login attempts for role \"{role}\" from this address; try again later")
            );
        }
        Outcome::Untracked => {
            pgrx::warning!(
                "pg_encrypt_ml: the login lockout table is full of locked pairs; a failure of role \"{role}\" from {addr} was not counted"
            );
        }
        Outcome::Allow | Outcome::Counted { .. } => {}
    }
}

/// A TimestampTz as ISO text, without catalog access (the hook runs before a database is
/// connected).
pub fn timestamp_text(ts: i64) -> String {
    // SAFETY: timestamptz_to_str takes the timestamp by value and returns NULL or a pointer to
    // its own static NUL-terminated buffer, which is copied before anything can overwrite it
    // (the backend is single-threaded); it reports a bad timestamp as text, not an ERROR.
    unsafe {
        let p = pg_sys::timestamptz_to_str(ts);
        if p.is_null() {
            ts.to_string()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

pub fn require_security_admin(what: &str) {
    let role = caller();
    if !(crate::pg::roles::is_superuser(role)
        || crate::pg::roles::has_privs_of_role_named(role, SECURITY_ADMIN))
    {
        crate::events::refused(
            "security_admin_refused",
            serde_json::json!({ "operation": what }),
        );
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: {what} needs superuser or {SECURITY_ADMIN}"),
        );
    }
}

/// The (role, address) pairs with recent failed logins or a lock in force.
#[pg_extern(volatile, parallel_restricted)]
fn auth_failures() -> TableIterator<
    'static,
    (
        name!(role_name, String),
        name!(client_addr, String),
        name!(failures, i32),
        name!(first_failure, pgrx::datum::TimestampWithTimeZone),
        name!(locked_until, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    crate::pg::preload::require_preload("encml.auth_failures");
    queue::forward();
    let now = now();
    let policy = policy();
    let rows: Vec<_> = {
        let table = AUTH_TABLE.share();
        table
            .0
            .entries(now, &policy)
            .map(|s| {
                (
                    String::from_utf8_lossy(s.pair.role()).into_owned(),
                    addr_text(s.pair.addr()),
                    s.failures as i32,
                    s.window_start,
                    s.locked_at(now).then_some(s.locked_until),
                )
            })
            .collect()
    };
    let ts = |t: i64| {
        // SAFETY: a TimestampTz is a pass-by-value int64 datum, every i64 is a valid one, and
        // the datum is not NULL.
        unsafe { pgrx::datum::TimestampWithTimeZone::from_datum(pg_sys::Datum::from(t), false) }
            .expect("a timestamp")
    };
    TableIterator::new(
        rows.into_iter()
            .map(move |(r, a, f, first, until)| (r, a, f, ts(first), until.map(ts))),
    )
}

/// Ends the lockouts (and forgets the failures) of a role, from one address or all. Returns the
/// number of locked pairs released. The role is a name: failed logins may name roles that do
/// not exist.
#[pg_extern(volatile, parallel_unsafe)]
fn unlock(role_name: Option<&str>, client_addr: default!(Option<&str>, "NULL")) -> Option<i32> {
    let role_name = role_name?;
    crate::pg::preload::require_preload("encml.unlock");
    require_security_admin("unlock");
    let addr = client_addr.map(|a| {
        if a == "local" {
            None
        } else {
            Some(a.parse::<IpAddr>().unwrap_or_else(|_| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                    format!("invalid client address \"{a}\" (an IP address, or 'local' for Unix sockets)"),
                )
            }))
        }
    });
    let released = AUTH_TABLE
        .exclusive()
        .0
        .unlock(role_name.as_bytes(), addr, now());
    crate::events::record(
        "auth_unlock",
        None,
        serde_json::json!({ "role": role_name, "client_addr": client_addr, "released": released }),
    );
    Some(released as i32)
}
