//! What the registered tables hold and who may read them: their columns (all, the classified
//! ones, those only a table under a registered one has), the tables under them (partitions and
//! inheritance children, among them the temporary tables and partitions being detached that
//! statements on the registered table leave out), and whether row-level security or the
//! caller's privileges let an export or erasure read them.

use super::{registrations, Registration};
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::types::identity;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// (name, oid of its type) of the table's columns, in order.
pub(super) fn columns(rel: pg_sys::Oid) -> Vec<(String, pg_sys::Oid)> {
    as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT a.attname::pg_catalog.text, a.atttypid FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 \
                AND NOT a.attisdropped ORDER BY a.attnum",
            &[crate::pg::catalog_reads::arg(rel)],
            0,
            |r| {
                (
                    r.get::<String>(1).unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2).unwrap_or(pg_sys::InvalidOid),
                )
            },
        )
    })
}

/// Whether row-level security of `rel` applies to the current role (the caller, in the subject
/// worker): its policies would hide rows from it.
pub(super) fn row_security_applies(rel: pg_sys::Oid) -> bool {
    // SAFETY: a catalog check of the relation for the current user; noError.
    unsafe {
        pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// Whether the current role (the caller, in the subject worker) holds `privilege` on the table
/// and USAGE on its schema, as Postgres requires of a statement naming it (attacker round 10:
/// the export read tables in a schema the caller could not use).
pub(super) fn has_table_privilege(rel: pg_sys::Oid, privilege: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, $2) \
            AND pg_catalog.has_schema_privilege((SELECT c.relnamespace FROM pg_catalog.pg_class c \
                 WHERE c.oid OPERATOR(pg_catalog.=) $1), 'USAGE')",
        &[rel.into(), privilege.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether row-level security of the table applies to its owner (it forces it on itself): the
/// statements the export and erasure run as the owner would see only what its policies let
/// them.
pub(super) fn row_security_applies_to_owner(rel: pg_sys::Oid) -> bool {
    let owner = crate::pg::identity::table_owner(rel);
    // SAFETY: a catalog check of the relation for the given role; noError.
    unsafe {
        pg_sys::check_enable_rls(rel, owner, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// `rels` with every table they inherit from, up to the roots (a column is classified where it
/// is defined, possibly in a table between, or in a second parent: attacker round 14).
pub(super) fn lineage(rels: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    let rels = rels.to_vec();
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE up(relid) AS ( \
             SELECT pg_catalog.unnest($1::pg_catalog.oid[]) \
             UNION SELECT i.inhparent FROM up u JOIN pg_catalog.pg_inherits i \
               ON i.inhrelid OPERATOR(pg_catalog.=) u.relid) \
         SELECT pg_catalog.array_agg(relid) FROM up",
        &[rels.into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// Names of the columns classified pii, phi, pci or secret (encml.classify) in any of `rels`.
pub(super) fn classified_columns(rels: &[pg_sys::Oid]) -> Vec<String> {
    let rels: Vec<pg_sys::Oid> = rels.to_vec();
    as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            "SELECT DISTINCT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a \
               JOIN encml.column_classes c \
                 ON c.table_oid OPERATOR(pg_catalog.=) a.attrelid \
                AND c.attnum OPERATOR(pg_catalog.=) a.attnum \
              WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1) AND NOT a.attisdropped \
                AND c.label OPERATOR(pg_catalog.=) ANY ('{pii,phi,pci,secret}'::pg_catalog.text[])",
            &[crate::pg::catalog_reads::arg(rels.clone())],
            0,
            |r| r.get::<String>(1).unwrap_or_default(),
        )
    })
}

/// The tables under the registered one that have columns of their own (inheritance children;
/// not in the registered table): statements on the registered table neither read nor change
/// those columns (attacker round 13: an anonymization kept a child's pii and ciphertext
/// columns, and the export left them out). With `sensitive` (anonymization), only columns it
/// must set to NULL (classified, or holding ciphertexts), also of tables registered themselves;
/// else (export) only of tables not registered themselves.
pub(super) fn columns_only_under(
    reg: &Registration,
    sensitive: bool,
) -> Vec<(pg_sys::Oid, Vec<String>)> {
    let own: Vec<String> = columns(reg.rel).into_iter().map(|(n, _)| n).collect();
    let registered: Vec<pg_sys::Oid> = if sensitive {
        Vec::new()
    } else {
        registrations().iter().map(|r| r.rel).collect()
    };
    tree_of(reg.rel)
        .into_iter()
        .filter(|m| *m != reg.rel && !registered.contains(m))
        .filter_map(|m| {
            let classified = classified_columns(&lineage(&[m]));
            let extra: Vec<String> = columns(m)
                .into_iter()
                .filter(|(name, typ)| {
                    !own.contains(name)
                        && (!sensitive
                            || classified.contains(name)
                            || identity::holds_encrypted(*typ))
                })
                .map(|(name, _)| name)
                .collect();
            (!extra.is_empty()).then_some((m, extra))
        })
        .collect()
}

pub(super) fn tree_of(rel: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "WITH RECURSIVE tree(relid) AS ( \
             SELECT $1 UNION SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i \
               ON i.inhparent OPERATOR(pg_catalog.=) t.relid) \
         SELECT pg_catalog.array_agg(relid) FROM tree",
        &[rel.into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

/// The first partition among `rels` whose detach is pending.
pub(super) fn detach_pending_in(rels: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    let rels = rels.to_vec();
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT i.inhrelid FROM pg_catalog.pg_inherits i \
                  WHERE i.inhdetachpending AND i.inhrelid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1)",
        &[rels.into()],
    )
    .or_spi_failed("")
}

/// The first temporary table among `rels`.
pub(super) fn temporary_in(rels: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    rels.iter().copied().find(|r| {
        // SAFETY: a syscache lookup of the relation's persistence.
        let persistence = unsafe { pg_sys::get_rel_persistence(*r) };
        persistence == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char
    })
}
