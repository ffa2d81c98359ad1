//! Threat detection and monitoring (docs/zero-trust.md, docs/monitoring.md):
//! - [`auth`]: brute-force login lockout per (role, client address), in shared memory;
//! - [`privilege_changes`]: role changes and the disabling of RLS or audit triggers as security
//!   events, and COPY TO described from utility statements;
//! - [`exfil`]: decrypted values per role and key per minute, alerting or blocking;
//! - [`large_results`]: COPY TO and large results from classified tables;
//! - [`queue`]: events raised where no audit log can be written (before a database is
//!   connected, or in a database without the extension), kept in shared memory until a backend
//!   with the extension forwards them;
//! - [`transport`]: logins without TLS by key holders, and roles marked as TLS services;
//! - [`pooled_session`]: no persistent settings from a transaction-pooling pooler's sessions.
//!
//! Everything that needs shared memory or hooks in every backend needs
//! `shared_preload_libraries = 'pg_encrypt_ml'`; without it the rest of the extension works,
//! these parts report that they are inactive, and block mode refuses to decrypt.

pub mod auth;
pub mod exfil;
pub mod gucs;
pub mod large_results;
pub mod pooled_session;
pub mod privilege_changes;
pub mod queue;
pub mod transport;

use pgrx::prelude::*;

/// From `_PG_init`: the GUCs always; shared memory and hooks only while preloading.
// pg_shmem_init! tests pgrx's version features, which this crate does not declare.
#[allow(unexpected_cfgs)]
pub fn init() {
    gucs::register();
    // SAFETY: a plain global the postmaster sets while it loads shared_preload_libraries; this
    // runs from _PG_init, single-threaded.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        use crate::events::parked::{Queue, QUEUE};
        use auth::{AuthTable, AUTH_TABLE};
        use exfil::{RateTable, RATE_TABLE};
        pgrx::pg_shmem_init!(AUTH_TABLE = AuthTable::EMPTY);
        pgrx::pg_shmem_init!(RATE_TABLE = RateTable::EMPTY);
        pgrx::pg_shmem_init!(QUEUE = Queue::EMPTY);
    }
}

pgrx::extension_sql_file!(
    "../../sql/schema/security.sql",
    name = "security_events",
    requires = ["audit_log"]
);

/// The pgrx test cluster does not preload the library: these check what happens then.
#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    fn encrypted_value() -> String {
        let k = Spi::get_one::<pgrx::Uuid>("SELECT encml.create_key('pgtest-threats')")
            .unwrap()
            .unwrap();
        Spi::get_one::<String>(&format!("SELECT encml.encrypt('v', '{k}')::text"))
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn without_preload_alert_mode_decrypts_and_reports_inactive() {
        assert!(!crate::pg::preload::preloaded());
        let c = encrypted_value();
        Spi::run("SET encml.decrypt_alert_threshold = 1").unwrap();
        assert_eq!(
            Spi::get_one::<String>(&format!(
                "SELECT encml.decrypt_text('{c}'::encml.enc_bytea)"
            )),
            Ok(Some("v".into()))
        );
        let metrics = Spi::get_one::<String>("SELECT encml.metrics(false)")
            .unwrap()
            .unwrap();
        assert!(
            metrics.lines().any(|l| l == "encml_preloaded 0"),
            "{metrics}"
        );
        assert!(!metrics.contains("encml_auth_failures_total"));
    }

    #[pg_test(
        error = "encml.decrypt_limit_action = 'block' needs pg_encrypt_ml in shared_preload_libraries"
    )]
    fn without_preload_block_mode_refuses_to_decrypt() {
        let c = encrypted_value();
        Spi::run("SET encml.decrypt_alert_threshold = 1000").unwrap();
        Spi::run("SET encml.decrypt_limit_action = 'block'").unwrap();
        Spi::get_one::<String>(&format!(
            "SELECT encml.decrypt_text('{c}'::encml.enc_bytea)"
        ))
        .unwrap();
    }

    #[pg_test(error = "encml.auth_failures needs pg_encrypt_ml in shared_preload_libraries")]
    fn without_preload_auth_failures_says_so() {
        Spi::run("SELECT * FROM encml.auth_failures").unwrap();
    }
}
