//! What an erasure does in each registered table (`Plan`), worked out once it has locked the
//! registrations and before any owner's code runs: the subject's identifiers that a key derives,
//! and the columns an anonymization clears.

use super::erasure_step::require_searchable;
use super::tables::{classified_columns, columns, columns_only_under, lineage, tree_of};
use super::worker::as_owner_of;
use super::{subject_predicate, IdKind, Registration, Search};
use crate::keys::catalog;
use crate::pg::errors::OrSpiFailed;
use crate::pg::sql_text::quote_literal;
use crate::types::identity;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// What an erasure does in one registered table, worked out when it has locked the
/// registrations, before any owner's code runs: that code can change what these depend on
/// (attacker round 16: an earlier table's trigger declassified a column, which the
/// anonymization then kept, or force-retired the identifier key's version, whose rows the
/// search then no longer found).
pub(super) struct Plan {
    /// How the subject's rows are found; key-derived identifiers are computed now.
    pub(super) search: Option<Search>,
    /// `anonymize`: the columns set to NULL, and those of tables under it, by number (an
    /// owner's code can rename them during an erasure).
    pub(super) cleared: Vec<i16>,
    pub(super) only_under: Vec<(pg_sys::Oid, Vec<i16>)>,
}

/// The numbers of the columns of `rel` named `names`.
fn attnums(rel: pg_sys::Oid, names: &[String]) -> Vec<i16> {
    Spi::get_one_with_args::<Vec<i16>>(
        "SELECT pg_catalog.array_agg(attnum ORDER BY attnum) FROM pg_catalog.pg_attribute \
          WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.name[]) \
            AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
        &[rel.into(), names.to_vec().into()],
    )
    .or_spi_failed("")
    .unwrap_or_default()
}

pub(super) type Plans = Vec<((pg_sys::Oid, i16, String), Plan)>;

pub(super) fn plan_for(reg: &Registration, subject: &str) -> Plan {
    require_searchable(reg);
    let anonymize = reg.on_forget == "anonymize";
    Plan {
        search: frozen_search(reg, subject),
        cleared: if anonymize {
            attnums(reg.rel, &anonymized_columns(reg))
        } else {
            Vec::new()
        },
        only_under: if anonymize {
            columns_only_under(reg, true)
                .into_iter()
                .map(|(m, names)| (m, attnums(m, &names)))
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The plan of `reg` as worked out at the start, or now for a column registered during the
/// erasure (by a superuser's direct change of the registry).
pub(super) fn planned<'a>(plans: &'a mut Plans, reg: &Registration, subject: &str) -> &'a Plan {
    let at = match plans.iter().position(|(id, _)| *id == reg.ident()) {
        Some(at) => at,
        None => {
            let plan = plan_for(reg, subject);
            plans.push((reg.ident(), plan));
            plans.len() - 1
        }
    };
    &plans[at].1
}

/// `subject_predicate` with the identifiers a key derives (det_text under every usable version
/// of the key, FPE tokens) computed now, as the table's owner (as the statements would), so
/// that later changes of the key do not change what is searched.
fn frozen_search(reg: &Registration, subject: &str) -> Option<Search> {
    let search = subject_predicate(reg, subject)?;
    let key = reg
        .id_key
        .map(|k| quote_literal(&catalog::uuid_string(k.as_bytes())));
    let (expression, after_column) = match reg.kind {
        IdKind::Plain => return Some(search),
        IdKind::Det => (
            format!(
                "SELECT encml.det_encrypt_all_versions($1, {}::uuid)::pg_catalog.text",
                key.expect("det_text registrations have a key")
            ),
            " OPERATOR(pg_catalog.=) ANY ($1::encml.det_text[])".to_string(),
        ),
        IdKind::Fpe => (
            format!(
                "SELECT encml.fpe_encrypt($1, {}::uuid, {})",
                key.expect("fpe registrations have a key"),
                quote_literal(reg.alphabet.as_deref().unwrap_or("0123456789"))
            ),
            " OPERATOR(pg_catalog.=) $1".to_string(),
        ),
    };
    let bound = as_owner_of(reg, "finding the subject's identifiers for", || {
        Spi::get_one_with_args::<String>(&expression, &[subject.into()]).or_spi_failed("")
    })?;
    Some(Search {
        after_column,
        bound,
    })
}

/// The columns an anonymization sets to NULL: the identifier, every column that can hold a
/// ciphertext of the extension (its types, domains over them, arrays, ranges and composite types
/// with one inside: `types::identity`) and every column classified pii, phi, pci or secret
/// (encml.classify).
fn anonymized_columns(reg: &Registration) -> Vec<String> {
    // Classified in the registered table or in any table under it (a partition's column
    // classified there alone was kept, attacker round 13): columns are matched by name.
    let classified = classified_columns(&lineage(&tree_of(reg.rel)));
    columns(reg.rel)
        .into_iter()
        .filter(|(name, typ)| {
            *name == reg.col || classified.contains(name) || identity::holds_encrypted(*typ)
        })
        .map(|(name, _)| name)
        .collect()
}
