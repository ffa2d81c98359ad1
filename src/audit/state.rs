//! The catalog state an audited table must be in for its log to be complete, checked from the
//! catalog itself (by the trigger function's OID, never by trigger name): `audit_verify` and
//! `compliance_report` fail while any audited table deviates, and the DDL event triggers refuse
//! a non-superuser's statement that makes one deviate.
//!
//! Each audited table, and each table whose rows its scans return (partitions, inheritance
//! children, recursively), needs
//! - a row trigger calling `encml.audit_row_trigger`: AFTER INSERT OR UPDATE OR DELETE FOR EACH
//!   ROW (`tgtype`), enabled for ordinary sessions (`tgenabled` O or A; R fires only in replica
//!   mode, D never), no WHEN clause (`tgqual`), no column list (`UPDATE OF`, `tgattr`), not a
//!   constraint trigger, and the configured redaction list as arguments (`tgargs`);
//! - an AFTER TRUNCATE statement trigger calling the same function, enabled, without WHEN.
//!
//! The extension's event triggers must exist and be enabled ALWAYS.

use crate::audit::SENSITIVE_LABELS;
use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::identity::as_extension_owner;
use crate::pg::schema_version::Release;
use pgrx::pg_sys;

// pg_trigger.tgtype bits (catalog/pg_trigger.h).
const TYPE_ROW: i16 = 1;
const TYPE_BEFORE: i16 = 2;
const TYPE_INSERT: i16 = 4;
const TYPE_DELETE: i16 = 8;
const TYPE_UPDATE: i16 = 16;
const TYPE_TRUNCATE: i16 = 32;
const TYPE_INSTEAD: i16 = 64;
/// AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW.
pub const ROW_TRIGGER_TYPE: i16 = TYPE_ROW | TYPE_INSERT | TYPE_DELETE | TYPE_UPDATE;
/// AFTER TRUNCATE FOR EACH STATEMENT.
pub const TRUNCATE_TRIGGER_TYPE: i16 = TYPE_TRUNCATE;

/// The release whose schema created them.
const EVENT_TRIGGERS_SINCE: Release = Release(0, 2, 0);

/// The event triggers the extension creates, all ENABLE ALWAYS.
pub const EVENT_TRIGGERS: [&str; 5] = [
    "encml_audit_ddl_start",
    "encml_audit_ddl_end",
    "encml_audit_sql_drop",
    "encml_audit_table_rewrite",
    "encml_forget_dropped_tables",
];

/// What kind of deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An audit trigger exists in a wrong state.
    Altered,
    /// The row trigger is right but for its redaction list (a column renamed or dropped since).
    Redaction,
    MissingRowTrigger,
    MissingTruncateTrigger,
    /// The audited table itself is gone.
    Gone,
}

/// One deviation: the audited table (the root of the tree), the relation concerned, and what.
#[derive(Debug, Clone)]
pub struct Problem {
    pub table: String,
    pub relation: String,
    pub relid: pg_sys::Oid,
    pub problem: String,
    pub kind: Kind,
}

impl Problem {
    pub fn describe(&self) -> String {
        if self.table == self.relation {
            format!("{}: {}", self.table, self.problem)
        } else {
            format!(
                "{} (part of {}): {}",
                self.relation, self.table, self.problem
            )
        }
    }
}

struct Trigger {
    name: String,
    kind: i16,
    enabled: String,
    has_qual: bool,
    columns: bool,
    constraint: bool,
    args: Vec<String>,
}

/// The split trigger arguments (`tgargs` holds them NUL-terminated, `tgnargs` of them).
fn split_args(raw: &[u8], n: i16) -> Vec<String> {
    raw.split(|b| *b == 0)
        .take(n.max(0) as usize)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn events(kind: i16) -> String {
    let mut e = Vec::new();
    for (bit, name) in [
        (TYPE_INSERT, "INSERT"),
        (TYPE_UPDATE, "UPDATE"),
        (TYPE_DELETE, "DELETE"),
        (TYPE_TRUNCATE, "TRUNCATE"),
    ] {
        if kind & bit != 0 {
            e.push(name);
        }
    }
    let when = if kind & TYPE_INSTEAD != 0 {
        "INSTEAD OF"
    } else if kind & TYPE_BEFORE != 0 {
        "BEFORE"
    } else {
        "AFTER"
    };
    let level = if kind & TYPE_ROW != 0 {
        "ROW"
    } else {
        "STATEMENT"
    };
    format!("{when} {} FOR EACH {level}", e.join(" OR "))
}

/// What is wrong with one trigger for the role `want` (its type), or None if it is right.
fn deviation(t: &Trigger, want: i16, expected_args: Option<&[String]>) -> Option<String> {
    let name = &t.name;
    if t.kind != want {
        return Some(format!(
            "audit trigger \"{name}\" fires {} instead of {}",
            events(t.kind),
            events(want)
        ));
    }
    match t.enabled.as_str() {
        "O" | "A" => {}
        "D" => return Some(format!("audit trigger \"{name}\" is disabled")),
        "R" => {
            return Some(format!(
                "audit trigger \"{name}\" fires only in replica mode (ENABLE REPLICA)"
            ))
        }
        other => return Some(format!("audit trigger \"{name}\" has tgenabled = {other}")),
    }
    if t.has_qual {
        return Some(format!("audit trigger \"{name}\" has a WHEN condition"));
    }
    if t.columns {
        return Some(format!(
            "audit trigger \"{name}\" fires only for UPDATE OF some columns"
        ));
    }
    if t.constraint {
        return Some(format!("audit trigger \"{name}\" is a constraint trigger"));
    }
    if let Some(expected) = expected_args {
        let mut got = t.args.clone();
        got.sort();
        got.dedup();
        if got != expected {
            return Some(format!(
                "audit trigger \"{name}\" redacts {:?} instead of {:?}",
                got, expected
            ));
        }
    }
    None
}

/// Deviations of the audited tables (all, or the tree of `root` only).
/// The extension's audit trigger function, recognised by catalog state (the C function of this
/// extension whose symbol is `encml_audit_row_trigger`), not by its name or schema: every check
/// of audit triggers compares `tgfoid` with it. InvalidOid where the extension has none.
pub fn row_trigger_function() -> pg_sys::Oid {
    as_extension_owner(|| {
        select_one::<pg_sys::Oid>(
            "SELECT p.oid FROM pg_catalog.pg_proc p \
               JOIN pg_catalog.pg_depend d \
                 ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid \
                AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e' \
               JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'pg_encrypt_ml' \
               JOIN pg_catalog.pg_language l ON l.oid = p.prolang AND l.lanname = 'c' \
              WHERE p.prosrc = 'encml_audit_row_trigger'",
            &[],
        )
        .unwrap_or(pg_sys::InvalidOid)
    })
}

pub fn problems(root: Option<pg_sys::Oid>) -> Vec<Problem> {
    struct RelRow {
        root: String,
        relation: String,
        exists: bool,
        expected: Vec<String>,
        trigger: Option<Trigger>,
        key: (u32, u32),
    }
    let rows = as_extension_owner(|| {
        read_rows(
            "WITH RECURSIVE fn AS (SELECT $3::pg_catalog.oid AS oid), \
             roots AS ( \
                 SELECT a.table_oid::oid AS root, \
                        ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(a.redact || ARRAY( \
                                SELECT att.attname::text FROM encml.column_classes cc \
                                  JOIN pg_catalog.pg_attribute att ON att.attrelid = cc.table_oid \
                                   AND att.attnum = cc.attnum AND NOT att.attisdropped \
                                 WHERE cc.table_oid = a.table_oid AND cc.label = ANY ($2))) x \
                              ORDER BY x) AS expected \
                   FROM encml.audited_tables a WHERE $1::oid IS NULL OR a.table_oid::oid = $1), \
             tree(root, relid) AS ( \
                 SELECT root, root FROM roots \
                 UNION SELECT t.root, i.inhrelid FROM tree t \
                   JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid) \
             SELECT t.root::pg_catalog.regclass::text, t.relid::pg_catalog.regclass::text, \
                    c.oid IS NOT NULL, r.expected, g.tgname::text, g.tgtype, g.tgenabled::text, \
                    g.tgqual IS NOT NULL, pg_catalog.array_length(g.tgattr::int2[], 1) > 0, \
                    g.tgconstraint <> 0, g.tgnargs, g.tgargs, t.root, t.relid \
               FROM tree t JOIN roots r ON r.root = t.root \
               LEFT JOIN pg_catalog.pg_class c ON c.oid = t.relid \
               LEFT JOIN pg_catalog.pg_trigger g ON g.tgrelid = t.relid AND g.tgfoid IN (SELECT oid FROM fn) \
              ORDER BY 1, t.root <> t.relid, 2, 5",
            &[
                arg(root),
                arg(SENSITIVE_LABELS.map(String::from).to_vec()),
                arg(row_trigger_function()),
            ],
            0,
            |r| RelRow {
                root: r.get::<String>(1).unwrap_or_default(),
                relation: r.get::<String>(2).unwrap_or_default(),
                exists: r.get::<bool>(3).unwrap_or(false),
                expected: r.get::<Vec<String>>(4).unwrap_or_default(),
                trigger: r.get::<String>(5).map(|name| Trigger {
                    name,
                    kind: r.get::<i16>(6).unwrap_or(0),
                    enabled: r.get::<String>(7).unwrap_or_default(),
                    has_qual: r.get::<bool>(8).unwrap_or(false),
                    columns: r.get::<bool>(9).unwrap_or(false),
                    constraint: r.get::<bool>(10).unwrap_or(false),
                    args: split_args(
                        &r.get::<Vec<u8>>(12).unwrap_or_default(),
                        r.get::<i16>(11).unwrap_or(0),
                    ),
                }),
                key: (
                    r.get::<pg_sys::Oid>(13).map(|o| o.to_u32()).unwrap_or(0),
                    r.get::<pg_sys::Oid>(14).map(|o| o.to_u32()).unwrap_or(0),
                ),
            },
        )
    });
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let first = &rows[i];
        let mut j = i;
        while j < rows.len() && rows[j].key == first.key {
            j += 1;
        }
        let group = &rows[i..j];
        i = j;
        let problem = |text: String, kind: Kind| Problem {
            table: first.root.clone(),
            relation: first.relation.clone(),
            relid: pg_sys::Oid::from(first.key.1),
            problem: text,
            kind,
        };
        if !first.exists {
            out.push(problem(
                "the audited table no longer exists".into(),
                Kind::Gone,
            ));
            continue;
        }
        let triggers: Vec<&Trigger> = group.iter().filter_map(|r| r.trigger.as_ref()).collect();
        // Every trigger calling the audit function must be one of the two, exactly once each:
        // another one (a BEFORE one, one without redaction, a second copy) would log what did not
        // happen, leak what is redacted, or log each change twice.
        let no_args: [String; 0] = [];
        let row_args = Some(first.expected.as_slice());
        let (mut rows, mut truncates) = (0, 0);
        for t in &triggers {
            if deviation(t, ROW_TRIGGER_TYPE, row_args).is_none() {
                rows += 1;
            } else if deviation(t, TRUNCATE_TRIGGER_TYPE, Some(&no_args)).is_none() {
                truncates += 1;
            } else {
                let d = if t.kind & TYPE_TRUNCATE != 0 && t.kind & TYPE_ROW == 0 {
                    deviation(t, TRUNCATE_TRIGGER_TYPE, Some(&no_args))
                } else {
                    deviation(t, ROW_TRIGGER_TYPE, row_args)
                };
                let only_redaction = deviation(t, ROW_TRIGGER_TYPE, None).is_none();
                out.push(problem(
                    d.unwrap_or_default(),
                    if only_redaction {
                        Kind::Redaction
                    } else {
                        Kind::Altered
                    },
                ));
            }
        }
        for (count, what, missing) in [
            (rows, "row", Kind::MissingRowTrigger),
            (truncates, "TRUNCATE", Kind::MissingTruncateTrigger),
        ] {
            match count {
                1 => {}
                0 if !triggers
                    .iter()
                    .any(|t| (t.kind & TYPE_ROW != 0) == (missing == Kind::MissingRowTrigger)) =>
                {
                    out.push(problem(format!("has no audit {what} trigger"), missing))
                }
                0 => {} // the deviating one is named above
                n => out.push(problem(
                    format!("has {n} audit {what} triggers: each change is logged {n} times"),
                    Kind::Altered,
                )),
            }
        }
    }
    out
}

/// The event triggers that are members of the extension (by catalog state, not by name), with
/// `evtenabled`.
pub fn extension_event_triggers() -> Vec<(String, String)> {
    as_extension_owner(|| {
        read_rows(
            "SELECT e.evtname::text, e.evtenabled::text FROM pg_catalog.pg_event_trigger e \
               JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) e.oid \
                AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_event_trigger'::pg_catalog.regclass \
                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
                AND d.deptype OPERATOR(pg_catalog.=) 'e' \
               JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid \
                AND x.extname OPERATOR(pg_catalog.=) 'pg_encrypt_ml'",
            &[],
            0,
            |r| {
                (
                    r.get::<String>(1).unwrap_or_default(),
                    r.get::<String>(2).unwrap_or_default(),
                )
            },
        )
    })
}

/// Deviations of the extension's event triggers: missing, or not enabled ALWAYS (a disabled one
/// fires for nobody, an ORIGIN one not in replica mode).
pub fn event_trigger_problems() -> Vec<String> {
    // A schema older than 0.2.0 (the library was updated, the schema not yet) has none of them.
    let schema = crate::pg::schema_version::installed();
    if schema
        .as_deref()
        .and_then(Release::parse)
        .is_some_and(|v| v < EVENT_TRIGGERS_SINCE)
    {
        return vec![format!(
            "the pg_encrypt_ml schema is at {}, without the event triggers that guard audited tables: run ALTER EXTENSION pg_encrypt_ml UPDATE",
            schema.unwrap_or_default()
        )];
    }
    let found = extension_event_triggers();
    EVENT_TRIGGERS
        .iter()
        .filter_map(|name| match found.iter().find(|(n, _)| n == name) {
            None => Some(format!("event trigger {name} is missing (dropped)")),
            Some((_, e)) if e == "A" => None,
            Some((_, e)) if e == "D" => Some(format!("event trigger {name} is disabled")),
            Some((_, e)) => Some(format!(
                "event trigger {name} is not enabled ALWAYS (evtenabled = {e}): it does not fire in replica mode"
            )),
        })
        .collect()
}

/// Every deviation as one line, the audited tables' first.
pub fn all_problems() -> Vec<String> {
    // (An audit trigger on a table that is not audited is not a deviation: the trigger function
    // refuses to fire there, and any role can create one on a table of its own.)
    let mut out: Vec<String> = problems(None).iter().map(Problem::describe).collect();
    out.extend(event_trigger_problems());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(kind: i16, enabled: &str, args: &[&str]) -> Trigger {
        Trigger {
            name: "t".into(),
            kind,
            enabled: enabled.into(),
            has_qual: false,
            columns: false,
            constraint: false,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_right_row_trigger_passes_and_each_deviation_is_named() {
        let want = vec!["email".to_string(), "ssn".to_string()];
        let ok = trigger(ROW_TRIGGER_TYPE, "O", &["ssn", "email"]);
        assert_eq!(deviation(&ok, ROW_TRIGGER_TYPE, Some(&want)), None);
        let always = trigger(ROW_TRIGGER_TYPE, "A", &["email", "ssn"]);
        assert_eq!(deviation(&always, ROW_TRIGGER_TYPE, Some(&want)), None);
        for (t, needle) in [
            (
                trigger(ROW_TRIGGER_TYPE, "D", &["email", "ssn"]),
                "disabled",
            ),
            (trigger(ROW_TRIGGER_TYPE, "R", &["email", "ssn"]), "replica"),
            (trigger(ROW_TRIGGER_TYPE, "O", &["email"]), "redacts"),
            (
                trigger(TYPE_ROW | TYPE_INSERT, "O", &["email", "ssn"]),
                "AFTER INSERT FOR EACH ROW instead of AFTER INSERT OR UPDATE OR DELETE",
            ),
            (
                trigger(ROW_TRIGGER_TYPE | TYPE_BEFORE, "O", &["email", "ssn"]),
                "BEFORE",
            ),
        ] {
            let d = deviation(&t, ROW_TRIGGER_TYPE, Some(&want)).expect("a deviation");
            assert!(d.contains(needle), "{d}");
        }
        let mut qual = trigger(ROW_TRIGGER_TYPE, "O", &["email", "ssn"]);
        qual.has_qual = true;
        assert!(deviation(&qual, ROW_TRIGGER_TYPE, Some(&want))
            .unwrap()
            .contains("WHEN"));
        let mut cols = trigger(ROW_TRIGGER_TYPE, "O", &["email", "ssn"]);
        cols.columns = true;
        assert!(deviation(&cols, ROW_TRIGGER_TYPE, Some(&want))
            .unwrap()
            .contains("UPDATE OF"));
    }

    #[test]
    fn trigger_arguments_are_split_at_nul() {
        assert_eq!(split_args(b"a\0b c\0", 2), vec!["a", "b c"]);
        assert!(split_args(b"", 0).is_empty());
    }
}
