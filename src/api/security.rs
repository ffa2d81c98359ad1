//! The SQL surface of monitoring: `encml.metrics()` in the Prometheus text exposition format
//! (version 0.0.4), for postgres_exporter's custom queries or any scraper. Reading security state
//! also forwards queued events (failed logins) to the audit log (`security::queue`).

use crate::pg::catalog_reads::read_rows;
use crate::pg::errors::raise;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, AUDITOR, SECURITY_ADMIN,
};
use crate::security::{auth, exfil, queue};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::fmt::Write;

fn require_monitor() {
    let role = caller();
    let allowed = is_superuser(role)
        || [AUDITOR, SECURITY_ADMIN, "pg_monitor"]
            .iter()
            .any(|g| has_privs_of_role_named(role, g));
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied: encml.metrics() needs encml_auditor, encml_security_admin or pg_monitor",
        );
    }
}

/// A label value escaped as the exposition format asks (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = writeln!(self.0, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// Security and key-management metrics in the Prometheus text format. `verify_audit_chain`
/// walks the whole audit chain (costly on a large log; a scraper may turn it off).
#[pg_extern(volatile, parallel_unsafe)]
fn metrics(verify_audit_chain: default!(bool, "true")) -> String {
    require_monitor();
    queue::forward();
    // A fresh snapshot: the events just forwarded were committed by another transaction.
    // SAFETY: inside the calling transaction; PushActiveSnapshot copies the static transaction
    // snapshot. It is popped at the end of this function, which has no early return; an ERROR
    // in between leaves it to the abort, which clears the active snapshot stack.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let mut out = Out(String::new());
    let preloaded = crate::pg::preload::preloaded();
    out.family("encml_preloaded", "gauge", "Whether pg_encrypt_ml is in shared_preload_libraries (login lockout, role-change events and decrypt rates need it).");
    out.sample("encml_preloaded", &[], preloaded as u8);

    let events = as_extension_owner(|| {
        read_rows(
            "SELECT coalesce(detail->>'severity', 'info'), operation, count(*) \
               FROM encml.audit_log WHERE kind = 'event' GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
            10_000,
            |r| {
                (
                    r.get::<String>(1).unwrap_or_default(),
                    r.get::<String>(2).unwrap_or_default(),
                    r.get::<i64>(3).unwrap_or(0),
                )
            },
        )
    });
    out.family(
        "encml_security_events_total",
        "counter",
        "Security events in the audit log, by severity and kind.",
    );
    for (sev, kind, n) in &events {
        out.sample(
            "encml_security_events_total",
            &[("severity", sev), ("kind", kind)],
            n,
        );
    }
    out.family(
        "encml_refusals_total",
        "counter",
        "Refused operations (key privileges, clearances, tenants, admin rights), by kind.",
    );
    for (_, kind, n) in events.iter().filter(|(_, k, _)| k.ends_with("_refused")) {
        out.sample("encml_refusals_total", &[("kind", kind)], n);
    }

    let plaintext_connections = as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<i64>(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity a \
               JOIN pg_catalog.pg_stat_ssl s ON s.pid OPERATOR(pg_catalog.=) a.pid \
               JOIN pg_catalog.pg_stat_gssapi g ON g.pid OPERATOR(pg_catalog.=) a.pid \
              WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend' \
                AND a.client_addr IS NOT NULL AND NOT s.ssl AND NOT g.encrypted",
            &[],
        )
        .unwrap_or(0)
    });
    out.family(
        "encml_connections_without_tls",
        "gauge",
        "Client connections over the network without TLS or GSSAPI encryption, now (logins by key holders among them are login_without_tls events).",
    );
    out.sample("encml_connections_without_tls", &[], plaintext_connections);

    let decrypts = as_extension_owner(|| {
        read_rows(
            "SELECT l.detail->>'key', coalesce(min(k.name), ''), sum((l.detail->>'values')::int8)::int8 \
               FROM encml.audit_log l LEFT JOIN encml.data_keys k ON k.id::text = l.detail->>'key' \
              WHERE l.kind = 'event' AND l.operation = 'decrypt' GROUP BY 1 ORDER BY 1",
            &[],
            100_000,
            |r| (r.get::<String>(1).unwrap_or_default(), r.get::<String>(2).unwrap_or_default(), r.get::<i64>(3).unwrap_or(0)),
        )
    });
    out.family(
        "encml_decrypted_values_total",
        "counter",
        "Values decrypted per key, as recorded by decryption auditing (encml.audit_decrypt).",
    );
    for (key, name, n) in &decrypts {
        out.sample(
            "encml_decrypted_values_total",
            &[("key", key), ("key_name", name)],
            n,
        );
    }

    // Absent before ALTER EXTENSION ... UPDATE from 0.1.0.
    if crate::pg::catalog_reads::extension_relation(c"key_usage") != pg_sys::InvalidOid {
        let encryptions = as_extension_owner(|| {
            read_rows(
                "SELECT key_id::text, version, encryptions FROM encml.key_usage \
                  WHERE status OPERATOR(pg_catalog.=) 'active' ORDER BY 1, 2",
                &[],
                100_000,
                |r| {
                    (
                        r.get::<String>(1).unwrap_or_default(),
                        r.get::<i32>(2).unwrap_or(0),
                        r.get::<i64>(3).unwrap_or(0),
                    )
                },
            )
        });
        out.family(
            "encml_key_encryptions_total",
            "counter",
            "AES-GCM encryptions with random nonces per active key version on this server (recorded + unrecorded); rotate before 2^31.",
        );
        for (key, version, n) in &encryptions {
            out.sample(
                "encml_key_encryptions_total",
                &[("key", key), ("version", &version.to_string())],
                n,
            );
        }
    }

    if preloaded {
        out.family(
            "encml_decrypt_values_per_minute",
            "gauge",
            "Values decrypted in the last minute per role and key (all sessions).",
        );
        for (role, key, per_minute, _) in exfil::snapshot() {
            let key = uuid::Uuid::from_bytes(key).to_string();
            out.sample(
                "encml_decrypt_values_per_minute",
                &[("role", &role_name(role)), ("key", &key)],
                per_minute,
            );
        }
        let (alerts, blocked, untracked) = exfil::totals();
        out.family(
            "encml_decrypt_rate_alerts_total",
            "counter",
            "Times a role crossed encml.decrypt_alert_threshold with a key (once per minute).",
        );
        out.sample("encml_decrypt_rate_alerts_total", &[], alerts);
        out.family(
            "encml_decrypt_rate_blocked_total",
            "counter",
            "Decryptions refused in block mode.",
        );
        out.sample("encml_decrypt_rate_blocked_total", &[], blocked);
        out.family(
            "encml_decrypt_rate_untracked_total",
            "counter",
            "Decryptions not tracked because the rate table was full.",
        );
        out.sample("encml_decrypt_rate_untracked_total", &[], untracked);

        let (failures, lockouts, refused, untracked, locked) = {
            let t = auth::AUTH_TABLE.share();
            (
                t.0.failures_total,
                t.0.lockouts_total,
                t.0.refused_total,
                t.0.untracked_total,
                t.0.locked_count(auth::now()),
            )
        };
        out.family(
            "encml_auth_failures_total",
            "counter",
            "Failed logins since the server started.",
        );
        out.sample("encml_auth_failures_total", &[], failures);
        out.family(
            "encml_auth_lockouts_total",
            "counter",
            "(role, client address) pairs locked after too many failed logins.",
        );
        out.sample("encml_auth_lockouts_total", &[], lockouts);
        out.family(
            "encml_auth_refused_locked_total",
            "counter",
            "Logins refused because their pair was locked.",
        );
        out.sample("encml_auth_refused_locked_total", &[], refused);
        out.family(
            "encml_auth_untracked_total",
            "counter",
            "Failed logins not counted because the lockout table was full of locked pairs.",
        );
        out.sample("encml_auth_untracked_total", &[], untracked);
        out.family(
            "encml_auth_locked_pairs",
            "gauge",
            "(role, client address) pairs locked now.",
        );
        out.sample("encml_auth_locked_pairs", &[], locked);
        let (waiting, dropped) = queue::stats();
        out.family(
            "encml_event_queue_waiting",
            "gauge",
            "Security events waiting in shared memory for an audit log.",
        );
        out.sample("encml_event_queue_waiting", &[], waiting);
        out.family("encml_event_queue_dropped_total", "counter", "Queued security events dropped because the queue was full (they are in the server log).");
        out.sample("encml_event_queue_dropped_total", &[], dropped);
    }

    let budgets = as_extension_owner(|| {
        read_rows(
            "SELECT analyst::text, scope, epsilon_spent, epsilon_total FROM encml.privacy_budgets ORDER BY 1, 2",
            &[],
            100_000,
            |r| (r.get::<String>(1).unwrap_or_default(), r.get::<String>(2).unwrap_or_default(),
                 r.get::<f64>(3).unwrap_or(0.0), r.get::<f64>(4).unwrap_or(0.0)),
        )
    });
    out.family(
        "encml_privacy_epsilon_spent",
        "gauge",
        "Privacy budget (epsilon) spent per analyst and scope.",
    );
    for (a, s, spent, _) in &budgets {
        out.sample(
            "encml_privacy_epsilon_spent",
            &[("analyst", a), ("scope", s)],
            spent,
        );
    }
    out.family(
        "encml_privacy_epsilon_total",
        "gauge",
        "Privacy budget (epsilon) granted per analyst and scope.",
    );
    for (a, s, _, total) in &budgets {
        out.sample(
            "encml_privacy_epsilon_total",
            &[("analyst", a), ("scope", s)],
            total,
        );
    }

    let days = crate::pg::gucs::KEY_ROTATION_DAYS.get();
    let keys = as_extension_owner(|| {
        read_rows(
            "SELECT count(*) FILTER (WHERE k.destroyed_at IS NULL), \
                    count(*) FILTER (WHERE k.destroyed_at IS NOT NULL), \
                    count(*) FILTER (WHERE k.destroyed_at IS NULL \
                                       AND v.created_at < pg_catalog.now() - pg_catalog.make_interval(days => $1)) \
               FROM encml.data_keys k \
               JOIN encml.data_key_versions v ON v.key_id = k.id AND v.version = k.current_version",
            &[crate::pg::catalog_reads::arg(days)],
            1,
            |r| (r.get::<i64>(1).unwrap_or(0), r.get::<i64>(2).unwrap_or(0), r.get::<i64>(3).unwrap_or(0)),
        )
    })
    .pop()
    .unwrap_or_default();
    out.family("encml_keys", "gauge", "Data keys by state.");
    out.sample("encml_keys", &[("state", "live")], keys.0);
    out.sample("encml_keys", &[("state", "destroyed")], keys.1);
    out.family(
        "encml_keys_rotation_overdue",
        "gauge",
        "Live keys whose current version is older than encml.key_rotation_days.",
    );
    out.sample("encml_keys_rotation_overdue", &[], keys.2);

    if verify_audit_chain {
        let v = crate::audit::chain::verify(None, None, false);
        out.family(
            "encml_audit_chain_ok",
            "gauge",
            "1 if the audit chain and its newest witness verify, else 0.",
        );
        out.sample("encml_audit_chain_ok", &[], v.ok as u8);
        out.family(
            "encml_audit_rows_verified",
            "gauge",
            "Audit rows checked by the last verification.",
        );
        out.sample("encml_audit_rows_verified", &[], v.rows_checked);
    }
    // SAFETY: pops the snapshot pushed at the top; every SPI call in between popped its own.
    unsafe { pg_sys::PopActiveSnapshot() };
    out.0
}
