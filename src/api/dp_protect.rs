//! DP-only tables: `dp_protect` and `dp_unprotect` (the table's owner), and `dp_gate`, the
//! row-level security condition that keeps a protected table closed where nothing would check
//! its queries. The checking itself is `privacy::dp_only` (a planner hook).
//!
//! Protecting a table forces row-level security on it with one restrictive policy,
//! `encml_dp_gate`, whose condition `(SELECT encml.dp_gate())` is true only in a backend where
//! the library was preloaded (so the planner hook checks every statement): without preloading,
//! the table shows no rows to anyone but superusers and roles with BYPASSRLS, its owner
//! included, instead of every row to every reader. If the table had no row-level security
//! before, a permissive `encml_dp_rows` policy (`true`) keeps its rows visible otherwise; both
//! are removed, and the table's settings restored, by `dp_unprotect`.

use crate::audit::events::require_table_owner;
use crate::events;
use crate::pg::catalog_reads::{arg, select_one};
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::types::reg::RegClass;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde_json::json;

fn table_name(rel: pg_sys::Oid) -> String {
    crate::audit::table_name(rel)
}

fn run(sql: &str) {
    Spi::run(sql).or_spi_failed("dp_protect");
}

/// The table's row-level security flags (enabled, forced).
fn rls_flags(rel: pg_sys::Oid) -> (bool, bool) {
    let row = select_one::<String>(
        "SELECT relrowsecurity::text || ',' || relforcerowsecurity::text \
           FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[arg(rel)],
    )
    .unwrap_or_default();
    let mut parts = row.split(',');
    (parts.next() == Some("true"), parts.next() == Some("true"))
}

/// Makes a table DP-only: roles that neither own it nor are privacy admins read it only
/// through dp aggregates bounded by `privacy_unit` (docs/privacy.md).
#[pg_extern(volatile, parallel_unsafe)]
fn dp_protect(
    tbl: Option<RegClass>,
    privacy_unit: Option<&str>,
    max_rows_per_unit: default!(Option<i32>, "1"),
) {
    crate::pg::recovery::refuse_during_recovery("encml.dp_protect()");
    let (Some(RegClass(rel)), Some(unit)) = (tbl, privacy_unit) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "table and privacy_unit must not be NULL",
        )
    };
    let max_rows = max_rows_per_unit.filter(|m| *m > 0).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_rows_per_unit must be at least 1",
        )
    });
    crate::privacy::dp_only::require_hook();
    require_table_owner(rel, "dp_protect_refused");
    let name = table_name(rel);
    // An ordinary table without partitions or inheritance children (their rows would be read
    // through them, unchecked).
    let plain = select_one::<bool>(
        "SELECT relkind OPERATOR(pg_catalog.=) 'r' AND NOT relhassubclass AND NOT relispartition \
           FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[arg(rel)],
    )
    .unwrap_or(false);
    if !plain {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name}: only ordinary tables without partitions or inheritance children can be DP-only"),
        );
    }
    let column = std::ffi::CString::new(unit).unwrap_or_default();
    // SAFETY: a syscache lookup of a column by name.
    let attnum = unsafe { pg_sys::get_attnum(rel, column.as_ptr()) };
    if attnum <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{unit}\" of {name} does not exist"),
        );
    }
    if max_rows == 1 {
        // One row per unit must be true of the data: a unique index on the unit alone.
        let unique = select_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_index \
              WHERE indrelid OPERATOR(pg_catalog.=) $1 AND indisunique AND indimmediate \
                AND indpred IS NULL AND indnkeyatts OPERATOR(pg_catalog.=) 1 \
                AND indkey[0] OPERATOR(pg_catalog.=) $2)",
            &[arg(rel), arg(attnum)],
        )
        .unwrap_or(false);
        if !unique {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{name}: with max_rows_per_unit 1 the privacy unit {unit} must be unique"),
                None,
                Some("Create a unique index (or primary key) on it, or give the most rows one unit may have.".into()),
            );
        }
    }
    let (rls, forced) = rls_flags(rel);
    let already = as_extension_owner(|| {
        select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.dp_protected_tables WHERE table_oid = $1)",
            &[arg(rel)],
        )
        .unwrap_or(false)
    });
    let qualified = select_one::<String>("SELECT $1::pg_catalog.regclass::text", &[arg(rel)])
        .unwrap_or_default();
    if !already {
        // The caller owns the table: these run with the caller's rights.
        if !rls {
            run(&format!(
                "ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY"
            ));
            run(&format!(
                "CREATE POLICY encml_dp_rows ON {qualified} AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true)"
            ));
        }
        if !forced {
            run(&format!("ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY"));
        }
        run(&format!(
            "CREATE POLICY encml_dp_gate ON {qualified} AS RESTRICTIVE FOR ALL \
             USING ((SELECT encml.dp_gate())) WITH CHECK ((SELECT encml.dp_gate()))"
        ));
    }
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO encml.dp_protected_tables \
                    (table_oid, privacy_unit, max_rows_per_unit, enabled_row_security, forced_row_security, protected_by) \
             VALUES ($1, $2, $3, $4, $5, session_user) \
             ON CONFLICT (table_oid) DO UPDATE SET privacy_unit = EXCLUDED.privacy_unit, \
                 max_rows_per_unit = EXCLUDED.max_rows_per_unit",
            &[
                rel.into(),
                unit.into(),
                max_rows.into(),
                (!rls).into(),
                (!forced).into(),
            ],
        )
        .or_spi_failed("dp_protect")
    });
    crate::privacy::protected::invalidate();
    events::record(
        "dp_protect",
        Some((rel, &name)),
        json!({ "privacy_unit": unit, "max_rows_per_unit": max_rows }),
    );
}

/// Makes a DP-only table ordinary again (its owner), restoring its row-level security settings.
#[pg_extern(volatile, parallel_unsafe)]
fn dp_unprotect(tbl: Option<RegClass>) {
    crate::pg::recovery::refuse_during_recovery("encml.dp_unprotect()");
    let Some(RegClass(rel)) = tbl else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "table must not be NULL",
        )
    };
    require_table_owner(rel, "dp_unprotect_refused");
    let name = table_name(rel);
    let settings: Option<String> = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "DELETE FROM encml.dp_protected_tables WHERE table_oid = $1 \
                     RETURNING enabled_row_security::text || ',' || forced_row_security::text",
                    None,
                    &[rel.into()],
                )
                .ok()
                .and_then(|rows| rows.first().get_one::<String>().ok().flatten())
        })
    });
    let Some(settings) = settings else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{name} is not DP-only"),
        )
    };
    let mut parts = settings.split(',');
    let (enabled, forced) = (parts.next() == Some("true"), parts.next() == Some("true"));
    let qualified = select_one::<String>("SELECT $1::pg_catalog.regclass::text", &[arg(rel)])
        .unwrap_or_default();
    run(&format!(
        "DROP POLICY IF EXISTS encml_dp_gate ON {qualified}"
    ));
    if forced {
        run(&format!(
            "ALTER TABLE {qualified} NO FORCE ROW LEVEL SECURITY"
        ));
    }
    if enabled {
        run(&format!(
            "DROP POLICY IF EXISTS encml_dp_rows ON {qualified}"
        ));
        run(&format!(
            "ALTER TABLE {qualified} DISABLE ROW LEVEL SECURITY"
        ));
    }
    crate::privacy::protected::invalidate();
    events::record("dp_unprotect", Some((rel, &name)), json!({}));
}

/// The condition of a DP-only table's `encml_dp_gate` policy: true where the library is
/// preloaded, so that the planner hook checks the statements that read it.
#[pg_extern(stable, parallel_safe)]
fn dp_gate() -> bool {
    crate::privacy::start::installed()
}

pgrx::extension_sql_file!(
    "../../sql/schema/dp_only.sql",
    name = "dp_only",
    requires = ["dp_aggregates"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
pub mod tests {
    use pgrx::prelude::*;

    // The pgrx test cluster does not preload the library: no planner hook would check the
    // statements, so nothing is protected there, and the gate of a table protected elsewhere
    // (a restored dump, a server restarted without preloading) keeps its rows closed.
    #[pg_test(error = "DP-only tables need pg_encrypt_ml in shared_preload_libraries")]
    fn without_preloading_nothing_is_protected() {
        Spi::run("CREATE TABLE dp_np (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT encml.dp_protect('dp_np', 'id')").unwrap();
    }

    #[pg_test]
    fn without_preloading_the_gate_is_closed() {
        assert_eq!(
            Spi::get_one::<bool>("SELECT encml.dp_gate()").unwrap(),
            Some(false)
        );
    }
}
