//! The SQL surface of auditing: enabling it on tables, classifying columns, and the chain's
//! head, verification, sealing and purging. The work is in `crate::audit`.

use crate::audit::{chain, state, table_name, triggers};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{caller, is_superuser, role_name, AUDIT_ADMIN};
use crate::types::reg::RegClass;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

/// Only the table's owner (or a superuser) audits or classifies it.
fn require_owner(rel: pg_sys::Oid) {
    crate::audit::events::require_table_owner(rel, "audit_owner_refused");
    // SAFETY: a syscache lookup by oid through pgrx's guarded binding (an ERROR becomes a
    // panic that this #[pg_extern] call re-raises); InvalidOid if missing, no pointers kept.
    if unsafe { pg_sys::get_rel_namespace(rel) } == own_schema() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the extension's own tables are not audited or classified this way",
        );
    }
}

fn own_schema() -> pg_sys::Oid {
    // SAFETY: the name is a NUL-terminated static C string literal; with missing_ok = false a
    // missing schema raises an ERROR, which the guarded binding turns into a Rust panic.
    unsafe { pg_sys::get_namespace_oid(c"encml".as_ptr(), false) }
}

fn event(operation: &str, rel: Option<pg_sys::Oid>, detail: serde_json::Value) {
    let name = rel.map(table_name);
    crate::events::record(operation, rel.zip(name.as_deref()), detail);
}

/// `audit_enable(regclass, text[])` of a 0.1.0 schema (its C symbol keeps its arguments; the
/// SQL function of 0.2.0 on is `audit_enable_with_reads`).
#[pg_extern(sql = false, volatile, parallel_unsafe)]
fn audit_enable(tbl: RegClass, redact: Vec<Option<String>>) {
    crate::pg::recovery::refuse_during_recovery("encml.audit_enable()");
    audit_enable_with_reads(tbl, redact, false)
}

/// Starts auditing the row changes of a table (and with `reads`, the statements reading it).
#[pg_extern(name = "audit_enable", volatile, parallel_unsafe)]
fn audit_enable_with_reads(
    tbl: RegClass,
    redact: default!(Vec<Option<String>>, "'{}'"),
    reads: default!(bool, false),
) {
    crate::pg::recovery::refuse_during_recovery("encml.audit_enable()");
    let rel = tbl.0;
    require_owner(rel);
    // (After the owner check: attacker pass of issue 30.)
    let redact = crate::pg::errors::no_nulls(redact, "redact");
    // SAFETY: a syscache lookup by oid (guarded binding); '\0' if missing, no pointers kept.
    let kind = unsafe { pg_sys::get_rel_relkind(rel) } as u8;
    if kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_PARTITIONED_TABLE {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{} is not a table", table_name(rel)),
        );
    }
    for c in &redact {
        let name = std::ffi::CString::new(c.as_str()).unwrap_or_default();
        // SAFETY: `name` is a NUL-terminated CString alive across the call, which only reads
        // it; a syscache lookup (guarded binding) giving InvalidAttrNumber (0) if missing.
        if unsafe { pg_sys::get_attnum(rel, name.as_ptr()) } <= 0 {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{c}\" of {} does not exist", table_name(rel)),
            );
        }
    }
    // A 0.1.0 schema (this library before ALTER EXTENSION ... UPDATE) has no reads column.
    let schema_reads = crate::audit::reads::schema_supports();
    if reads && !schema_reads {
        crate::pg::schema_version::require(
            crate::pg::schema_version::Release(0, 2, 0),
            "read auditing",
        );
    }
    let all = triggers::install(rel, &redact);
    let by = role_name(caller());
    as_extension_owner(|| {
        Spi::run_with_args(
            if schema_reads {
                "INSERT INTO encml.audited_tables (table_oid, redact, enabled_by, reads) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (table_oid) DO UPDATE SET redact = EXCLUDED.redact, \
                     enabled_by = EXCLUDED.enabled_by, enabled_at = now(), reads = EXCLUDED.reads"
            } else {
                "INSERT INTO encml.audited_tables (table_oid, redact, enabled_by) VALUES ($1, $2, $3) \
                 ON CONFLICT (table_oid) DO UPDATE SET redact = EXCLUDED.redact, \
                     enabled_by = EXCLUDED.enabled_by, enabled_at = now()"
            },
            &if schema_reads {
                vec![rel.into(), redact.clone().into(), by.into(), reads.into()]
            } else {
                vec![rel.into(), redact.clone().into(), by.into()]
            },
        )
        .or_spi_failed("audit_enable")
    });
    crate::audit::audited::invalidate();
    event(
        "audit_enable",
        Some(rel),
        serde_json::json!({ "redact": all, "reads": reads }),
    );
}

/// Stops auditing a table (the stop itself is logged).
#[pg_extern(volatile, parallel_unsafe)]
fn audit_disable(tbl: RegClass) {
    crate::pg::recovery::refuse_during_recovery("encml.audit_disable()");
    let rel = tbl.0;
    require_owner(rel);
    // A partition or child of an audited table is audited as part of it: dropping its triggers
    // alone would silence it (an attacker's find; verification noticed, but it should not run).
    let explicitly = as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.audited_tables WHERE table_oid = $1)",
            &[crate::pg::catalog_reads::arg(rel)],
        )
        .unwrap_or(false)
    });
    if !explicitly {
        if let Some(a) = crate::audit::audited::map().get(&rel) {
            raise_full(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{} is audited as part of {}", table_name(rel), a.root_name),
                None,
                Some(format!(
                    "Disable auditing of {} (which covers all its partitions and children), or detach this table from it.",
                    a.root_name
                )),
            );
        }
    }
    triggers::drop_all(rel);
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM encml.audited_tables WHERE table_oid = $1",
            &[rel.into()],
        )
        .or_spi_failed("audit_disable")
    });
    crate::audit::audited::invalidate();
    event("audit_disable", Some(rel), serde_json::json!({}));
}

/// Labels a column (pii, phi, pci, secret, or any lowercase label); NULL removes the label.
/// On an audited table the audit trigger is updated so that sensitive columns are redacted.
#[pg_extern(volatile, parallel_unsafe)]
fn classify(tbl: Option<RegClass>, col: Option<&str>, label: Option<&str>) {
    crate::pg::recovery::refuse_during_recovery("encml.classify()");
    let (Some(RegClass(rel)), Some(col)) = (tbl, col) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "table and column must not be NULL",
        )
    };
    require_owner(rel);
    let name = std::ffi::CString::new(col).unwrap_or_default();
    // SAFETY: as above: `name` outlives the call; a guarded syscache lookup, 0 if missing.
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
        r.or_spi_failed("classify")
    });
    if let Some(explicit) = triggers::audited(rel) {
        triggers::install(rel, &explicit);
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
    crate::pg::recovery::refuse_during_recovery("encml.audit_seal()");
    chain::seal().1
}

/// `audit_head()` of a 0.1.0 schema: (id, mac) (its C symbol keeps its result).
#[pg_extern(sql = false, volatile, parallel_unsafe)]
fn audit_head() -> TableIterator<'static, (name!(id, Option<i64>), name!(mac, Option<String>))> {
    let head = chain::seal().0;
    TableIterator::once((head.map(|h| h.1), head.map(|h| hex::encode(h.2))))
}

/// The chain head after sealing, for an external system to record as a witness and pass back
/// to `audit_verify(seq, mac)`.
#[pg_extern(name = "audit_head", volatile, parallel_unsafe)]
fn audit_head_with_seq() -> TableIterator<
    'static,
    (
        name!(id, Option<i64>),
        name!(mac, Option<String>),
        name!(seq, Option<i64>),
    ),
> {
    let head = chain::seal().0;
    TableIterator::once((
        head.map(|h| h.1),
        head.map(|h| hex::encode(h.2)),
        head.map(|h| h.0),
    ))
}

/// Verifies the chain (from the latest checkpoint, or from the row `from_id`), its newest witness
/// and the audit state.
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
    let v = chain::verify(from_id, None, false);
    TableIterator::once((v.ok, v.rows_checked, v.first_bad_id, v.detail))
}

/// Verifies the whole chain from its start (the latest purge anchor), not from the latest
/// checkpoint, and leaves a checkpoint for the next `audit_verify()`.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_verify_full() -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(rows_checked, i64),
        name!(first_bad_id, Option<i64>),
        name!(detail, String),
    ),
> {
    let v = chain::verify(None, None, true);
    TableIterator::once((v.ok, v.rows_checked, v.first_bad_id, v.detail))
}

/// Verifies the chain as `audit_verify()` does, and that it passes through a head recorded
/// outside the database (`audit_head()`'s seq and mac), also once that head has been purged.
#[pg_extern(name = "audit_verify", volatile, parallel_unsafe)]
fn audit_verify_against(
    expected_seq: i64,
    expected_mac: &str,
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(rows_checked, i64),
        name!(first_bad_id, Option<i64>),
        name!(detail, String),
    ),
> {
    let mac = hex::decode(expected_mac.trim())
        .ok()
        .and_then(|m| <[u8; 32]>::try_from(m).ok())
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "expected_mac must be 64 hexadecimal digits, as audit_head() returns it",
            )
        });
    if expected_seq < 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "expected_seq must be positive, as audit_head() returns it",
        );
    }
    let v = chain::verify(None, Some((expected_seq, mac)), true);
    TableIterator::once((v.ok, v.rows_checked, v.first_bad_id, v.detail))
}

/// What deviates from the state auditing needs: audit triggers missing, disabled, replica-only,
/// conditional, narrowed or with another redaction list, on audited tables or the tables under
/// them; the extension's event triggers missing or not enabled ALWAYS.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_state(
) -> TableIterator<'static, (name!(table_name, Option<String>), name!(problem, String))> {
    let mut rows: Vec<(Option<String>, String)> = state::problems(None)
        .into_iter()
        .map(|p| {
            let text = if p.relation == p.table {
                p.problem
            } else {
                format!("{} (part of it): {}", p.relation, p.problem)
            };
            (Some(p.table), text)
        })
        .collect();
    rows.extend(
        state::event_trigger_problems()
            .into_iter()
            .map(|p| (None, p)),
    );
    TableIterator::new(rows)
}

/// Removes audit rows logged before `before`, keeping the rest verifiable (an anchor row records
/// the last removed MAC); the purge itself is logged.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_purge(before: pgrx::datum::TimestampWithTimeZone) -> i64 {
    crate::pg::recovery::refuse_during_recovery("encml.audit_purge()");
    if !is_superuser(caller()) && !crate::pg::roles::has_privs_of_role_named(caller(), AUDIT_ADMIN)
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

    /// The event triggers need no preloading (this test cluster does not preload the library):
    /// every way for a table owner to stop an audit trigger is refused; a superuser's change is
    /// allowed, logged, and makes verification fail naming the table.
    #[pg_test]
    fn without_preloading_a_table_owner_cannot_silence_the_audit_triggers() {
        let preload = Spi::get_one::<String>("SHOW shared_preload_libraries")
            .unwrap()
            .unwrap_or_default();
        assert!(!preload.contains("pg_encrypt_ml"), "{preload}");
        Spi::run(
            "CREATE FUNCTION public.pgt_try(sql text) RETURNS text LANGUAGE plpgsql AS $f$ \
             BEGIN EXECUTE sql; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $f$",
        )
        .unwrap();
        Spi::run("CREATE ROLE pgt_owner").unwrap();
        Spi::run("GRANT CREATE ON SCHEMA public TO pgt_owner").unwrap();
        Spi::run("SET ROLE pgt_owner").unwrap();
        Spi::run("CREATE TABLE public.pgt_silenced (id int, ssn text)").unwrap();
        Spi::run("SELECT encml.audit_enable('public.pgt_silenced', '{ssn}')").unwrap();
        for statement in [
            "ALTER TABLE public.pgt_silenced ENABLE REPLICA TRIGGER encml_audit_row",
            "ALTER TABLE public.pgt_silenced DISABLE TRIGGER USER",
            "CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE \
               ON public.pgt_silenced FOR EACH ROW WHEN (false) \
               EXECUTE FUNCTION encml.audit_row_trigger('ssn')",
            "DROP TRIGGER encml_audit_truncate ON public.pgt_silenced",
        ] {
            let state =
                Spi::get_one_with_args::<String>("SELECT public.pgt_try($1)", &[statement.into()])
                    .unwrap()
                    .unwrap();
            assert_eq!(state, "42501", "{statement}");
        }
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM encml.audit_state()").unwrap(),
            Some(0)
        );
        Spi::run("ALTER TABLE public.pgt_silenced DISABLE TRIGGER encml_audit_row").unwrap();
        let (ok, detail) =
            Spi::get_two::<bool, String>("SELECT ok, detail FROM encml.audit_verify()").unwrap();
        assert_eq!(ok, Some(false));
        assert!(detail
            .unwrap_or_default()
            .contains("public.pgt_silenced: audit trigger \"encml_audit_row\" is disabled"));
        let logged = Spi::get_one::<String>(
            "SELECT operation FROM encml.audit_log WHERE kind = 'event' ORDER BY id DESC LIMIT 1",
        )
        .unwrap();
        assert_eq!(logged.as_deref(), Some("audit_trigger_disabled"));
    }

    #[pg_test(error = "the audit log is append-only")]
    fn the_log_refuses_truncate() {
        Spi::run("TRUNCATE encml.audit_log").unwrap();
    }
}
