//! Settings of threat detection. The lockout settings are SIGHUP (read by the postmaster's
//! children at authentication, before any client setting applies); the decryption limits are
//! superuser-only, so a role cannot raise its own limit.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LimitAction {
    Alert,
    Block,
}

pub static MAX_AUTH_FAILURES: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static AUTH_FAILURE_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static AUTH_LOCKOUT: GucSetting<i32> = GucSetting::<i32>::new(900);
pub static DECRYPT_ALERT_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static DECRYPT_LIMIT_ACTION: GucSetting<LimitAction> =
    GucSetting::<LimitAction>::new(LimitAction::Alert);
pub static LARGE_RESULT_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

pub fn register() {
    GucRegistry::define_int_guc(
        c"encml.max_auth_failures",
        c"Failed logins of a role from one client address before that pair is locked (0 = off).",
        c"Needs pg_encrypt_ml in shared_preload_libraries. Only the (role, address) pair is \
          locked, so nobody can lock a role out everywhere.",
        &MAX_AUTH_FAILURES,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"encml.auth_failure_window",
        c"Seconds within which failed logins are counted towards encml.max_auth_failures.",
        c"",
        &AUTH_FAILURE_WINDOW,
        1,
        86_400 * 7,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"encml.auth_lockout",
        c"Seconds a (role, client address) pair stays locked after too many failed logins.",
        c"encml.unlock() ends a lockout early.",
        &AUTH_LOCKOUT,
        1,
        86_400 * 7,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"encml.decrypt_alert_threshold",
        c"Values a role may decrypt with one key per minute before a critical event (0 = off).",
        c"Counted across sessions in shared memory (needs shared_preload_libraries). The alert is \
          logged at once and sent with NOTIFY on channel encml_alerts.",
        &DECRYPT_ALERT_THRESHOLD,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"encml.decrypt_limit_action",
        c"What happens above encml.decrypt_alert_threshold: alert, or block further decryptions in that minute.",
        c"Block mode refuses to decrypt when the library is not preloaded, rather than allow \
          without counting.",
        &DECRYPT_LIMIT_ACTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"encml.large_result_rows",
        c"Rows a single query may return from a classified table before a security event (0 = off).",
        c"COPY TO of a classified table is an event whatever its size.",
        &LARGE_RESULT_ROWS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}
