//! The SQL surface of auditing: enabling it on tables, classifying columns, and the chain's
//! head, verification, sealing and purging. The work is in `crate::audit`.

use crate::audit::{chain, table_name, SENSITIVE_LABELS};
use crate::pg::catalog_access::{as_extension_owner, caller, is_superuser, role_name};
use crate::pg::errors::raise;
use crate::pg::sql_text::quote_literal;
use crate::types::reg::RegClass;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

/// Only the table's owner (or a superuser) audits or classifies it.
fn require_owner(rel: pg_sys::Oid) {
    crate::pg::catalog_access::require_table_owner(rel, "audit_owner_refused");
    if unsafe { pg_sys::get_rel_namespace(rel) } == own_schema() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the extension's own tables are not audited or classified this way",
        );
    }
}

fn own_schema() -> pg_sys::Oid {
    unsafe { pg_sys::get_namespace_oid(c"encml".as_ptr(), false) }
}

fn event(operation: &str, rel: Option<pg_sys::Oid>, detail: serde_json::Value) {
    let name = rel.map(table_name);
    crate::audit::events::record(operation, rel.zip(name.as_deref()), detail);
}

/// The columns of `rel` classified with a sensitive label.
fn sensitive_columns(rel: pg_sys::Oid) -> Vec<String> {
    as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT a.attname::text FROM encml.column_classes c \
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum \
                      WHERE c.table_oid = $1 AND c.label = ANY ($2) AND NOT a.attisdropped",
                    None,
                    &[rel.into(), SENSITIVE_LABELS.map(String::from).to_vec().into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    })
}

/// The explicitly redacted columns recorded by audit_enable, if the table is audited.
fn audited(rel: pg_sys::Oid) -> Option<Vec<String>> {
    as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT redact FROM encml.audited_tables WHERE table_oid = $1",
                    None,
                    &[rel.into()],
                )
                .ok()
                .and_then(|mut rows| rows.next())
                .and_then(|r| r.get::<Vec<String>>(1).ok().flatten())
        })
    })
}

/// Drops the audit triggers of `rel` that exist (as the caller).
fn drop_triggers(rel: pg_sys::Oid) {
    let table = table_name(rel);
    let existing: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT tgname::text FROM pg_catalog.pg_trigger WHERE tgrelid = $1 \
                   AND tgname IN ('encml_audit_row', 'encml_audit_truncate')",
                None,
                &[rel.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect()
            })
            .unwrap_or_default()
    });
    for t in existing {
        Spi::run(&format!("DROP TRIGGER {t} ON {table}")).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("audit: {e}"),
            )
        });
    }
}

/// (Re)creates the audit triggers of `rel`, redacting `explicit` and the sensitive columns.
fn install_triggers(rel: pg_sys::Oid, explicit: &[String]) -> Vec<String> {
    let mut redact: Vec<String> = explicit.to_vec();
    for c in sensitive_columns(rel) {
        if !redact.contains(&c) {
            redact.push(c);
        }
    }
    let table = table_name(rel);
    let args: Vec<String> = redact.iter().map(|c| quote_literal(c)).collect();
    drop_triggers(rel);
    // As the caller: CREATE TRIGGER checks their rights on the table. One statement per call:
    // Citus forwards each to the shards of a distributed table by its text.
    for statement in [
        format!(
            "CREATE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON {table} \
               FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger({})",
            args.join(", ")
        ),
        format!(
            "CREATE TRIGGER encml_audit_truncate AFTER TRUNCATE ON {table} \
               FOR EACH STATEMENT EXECUTE FUNCTION encml.audit_row_trigger()"
        ),
    ] {
        Spi::run(&statement).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("audit_enable: {e}"),
            )
        });
    }
    redact
}

/// Starts auditing the row changes of a table.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_enable(tbl: RegClass, redact: default!(Vec<String>, "'{}'")) {
    let rel = tbl.0;
    require_owner(rel);
    let kind = unsafe { pg_sys::get_rel_relkind(rel) } as u8;
    if kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_PARTITIONED_TABLE {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{} is not a table", table_name(rel)),
        );
    }
    for c in &redact {
        let name = std::ffi::CString::new(c.as_str()).unwrap_or_default();
        if unsafe { pg_sys::get_attnum(rel, name.as_ptr()) } <= 0 {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{c}\" of {} does not exist", table_name(rel)),
            );
        }
    }
    let all = install_triggers(rel, &redact);
    let by = role_name(caller());
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO encml.audited_tables (table_oid, redact, enabled_by) VALUES ($1, $2, $3) \
             ON CONFLICT (table_oid) DO UPDATE SET redact = EXCLUDED.redact, \
                 enabled_by = EXCLUDED.enabled_by, enabled_at = now()",
            &[rel.into(), redact.clone().into(), by.into()],
        )
        .unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("audit_enable: {e}"),
            )
        })
    });
    event(
        "audit_enable",
        Some(rel),
        serde_json::json!({ "redact": all }),
    );
}

/// Stops auditing a table (the stop itself is logged).
#[pg_extern(volatile, parallel_unsafe)]
fn audit_disable(tbl: RegClass) {
    let rel = tbl.0;
    require_owner(rel);
    drop_triggers(rel);
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM encml.audited_tables WHERE table_oid = $1",
            &[rel.into()],
        )
        .unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("audit_disable: {e}"),
            )
        })
    });
    event("audit_disable", Some(rel), serde_json::json!({}));
}

/// Labels a column (pii, phi, pci, secret, or any lowercase label); NULL removes the label.
/// On an audited table the audit trigger is updated so that sensitive columns are redacted.
#[pg_extern(volatile, parallel_unsafe)]
fn classify(tbl: Option<RegClass>, col: Option<&str>, label: Option<&str>) {
    let (Some(RegClass(rel)), Some(col)) = (tbl, col) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "table and column must not be NULL",
        )
    };
    require_owner(rel);
    let name = std::ffi::CString::new(col).unwrap_or_default();
    let attnum = unsafe { pg_sys::get_attnum(rel, name.as_ptr()) };
    if attnum <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{col}\" of {} does not exist", table_name(rel)),
        );
    }
    if let Some(l) = label {
        let valid = l.len() < 64
            && l.starts_with(|c: char| c.is_ascii_lowercase())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "a label is a lowercase word (letters, digits, _), for example pii, phi, pci, secret",
            );
        }
    }
    as_extension_owner(|| {
        let r = match label {
            Some(l) => Spi::run_with_args(
                "INSERT INTO encml.column_classes (table_oid, attnum, label) VALUES ($1, $2, $3) \
                 ON CONFLICT (table_oid, attnum) DO UPDATE SET label = EXCLUDED.label",
                &[rel.into(), attnum.into(), l.into()],
            ),
            None => Spi::run_with_args(
                "DELETE FROM encml.column_classes WHERE table_oid = $1 AND attnum = $2",
                &[rel.into(), attnum.into()],
            ),
        };
        r.unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("classify: {e}"),
            )
        })
    });
    if let Some(explicit) = audited(rel) {
        install_triggers(rel, &explicit);
    }
    event(
        "classify",
        Some(rel),
        serde_json::json!({ "column": col, "label": label }),
    );
}

/// Seals the committed unsealed rows; returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_seal() -> i64 {
    chain::seal().1
}

/// The chain head after sealing, for an external system to record as a witness.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_head() -> TableIterator<'static, (name!(id, Option<i64>), name!(mac, Option<String>))> {
    let head = chain::seal().0;
    TableIterator::once((head.map(|h| h.1), head.map(|h| hex::encode(h.2))))
}

/// Verifies the chain (from its start, or from the row `from_id`) and its newest witness.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_verify(
    from_id: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(rows_checked, i64),
        name!(first_bad_id, Option<i64>),
        name!(detail, String),
    ),
> {
    let v = chain::verify(from_id);
    TableIterator::once((v.ok, v.rows_checked, v.first_bad_id, v.detail))
}

/// Removes audit rows logged before `before`, keeping the rest verifiable (an anchor row records
/// the last removed MAC); the purge itself is logged.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_purge(before: pgrx::datum::TimestampWithTimeZone) -> i64 {
    if !is_superuser(caller())
        && !crate::pg::catalog_access::has_privs_of_role_named(caller(), "encml_audit_admin")
    {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied to purge the audit log: needs superuser or encml_audit_admin",
        );
    }
    chain::purge(before)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn an_audited_change_is_logged_redacted_and_the_chain_verifies() {
        Spi::run("CREATE TABLE pgt_audited (id int, email text)").unwrap();
        Spi::run("SELECT encml.audit_enable('pgt_audited', '{email}')").unwrap();
        Spi::run("INSERT INTO pgt_audited VALUES (1, 'a@b.example')").unwrap();
        let logged = Spi::get_one::<String>(
            "SELECT new_row->>'email' FROM encml.audit_log WHERE operation = 'INSERT' \
              ORDER BY id DESC LIMIT 1",
        )
        .unwrap()
        .unwrap();
        assert!(
            logged.starts_with("hmac:") && !logged.contains("a@b"),
            "{logged}"
        );
        let ok = Spi::get_one::<bool>("SELECT ok FROM encml.audit_verify()")
            .unwrap()
            .unwrap();
        assert!(ok);
    }

    #[pg_test(error = "the audit log is append-only")]
    fn the_log_refuses_truncate() {
        Spi::run("TRUNCATE encml.audit_log").unwrap();
    }
}
