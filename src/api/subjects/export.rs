//! Access and portability (`subject_export`): every row of the subject in every registered
//! table, decrypted where the caller may, and the subject's consent history, as one document
//! (docs/formats.md), read in the subject worker.

use super::tables::{
    columns, columns_only_under, detach_pending_in, has_table_privilege, row_security_applies,
    row_security_applies_to_owner, temporary_in, tree_of,
};
use super::worker::{as_owner_of, in_own_session, refuse_with_conflicting_locks};
use super::{
    may_process_subjects, registrations, subject_predicate, unsearchable, FORCED_ROW_SECURITY,
};
use crate::events;
use crate::keys::grants::Privilege;
use crate::keys::{cache, catalog};
use crate::pg::errors::OrSpiFailed;
use crate::pg::roles::{caller, has_privs_of_role_named, role_name, DPO, SUBJECT_PROCESSOR};
use crate::pg::sql_text::quote_ident;
use crate::types::identity::{self, Encrypted};
use base64::Engine;
use encml_core::format::Header;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};
use serde_json::{json, Value};

/// Layout name and version of `subject_export`'s document (docs/formats.md).
const EXPORT_FORMAT: &str = "encml.subject_export/1";

/// A stored ciphertext as the export shows it: its plaintext when the caller may decrypt it,
/// else the ciphertext with its key and the reason (docs/formats.md, "Subject export").
fn exported_value(kind: Encrypted, bytes: &[u8], shown: &Value) -> (Value, bool) {
    let undecrypted = |key: Option<&[u8; 16]>, reason: String| {
        (
            json!({
                "encrypted": shown,
                "key": key.map(catalog::uuid_string),
                "reason": reason,
            }),
            false,
        )
    };
    // Stored values passed the type's input checks; a header that still does not decode
    // (a value written around them) is reported as such, without the parser's wording.
    let Ok(header) = Header::decode_as(bytes, kind.kind()) else {
        return undecrypted(None, format!("not a valid {} value", kind.type_name()));
    };
    if !kind.decryptable() {
        return undecrypted(
            Some(&header.key_id),
            "order-revealing values are exported encrypted".into(),
        );
    }
    let key = match cache::try_version(&header.key_id, header.key_version) {
        Ok(k) => k,
        Err(e) => return undecrypted(Some(&header.key_id), e.message),
    };
    if !key.usable(Privilege::Decrypt) {
        return undecrypted(
            Some(&header.key_id),
            "the caller may not decrypt with this key".into(),
        );
    }
    let plain = match kind {
        Encrypted::EncBytea => key.aead(Privilege::Decrypt).open(bytes, &[]),
        _ => key.deterministic(Privilege::Decrypt).open(bytes),
    };
    let plain = match plain {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(e) => {
            return undecrypted(
                Some(&header.key_id),
                format!("{e} (values encrypted with associated data are exported encrypted)"),
            )
        }
    };
    crate::security::exfil::decrypted(&header.key_id);
    let value = match std::str::from_utf8(&plain) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&plain[..]) }),
    };
    (value, true)
}

/// (name, type) of the table's columns of a ciphertext type of the extension, or of a domain
/// over one (recognised by OID, `types::identity`); and the names of the columns whose values
/// hold ciphertexts inside (arrays, composite and range values of them), exported as stored.
fn encrypted_columns(rel: pg_sys::Oid) -> (Vec<(String, Encrypted)>, Vec<String>) {
    let mut direct = Vec::new();
    let mut containers = Vec::new();
    for (name, typ) in columns(rel) {
        match identity::encrypted_type(typ) {
            Some(kind) => direct.push((name, kind)),
            None if identity::holds_encrypted(typ) => containers.push(name),
            None => {}
        }
    }
    (direct, containers)
}

/// A value holding ciphertexts inside, as the export shows it: as stored, flagged (docs/formats.md).
fn exported_container(shown: Value) -> Value {
    json!({
        "encrypted": shown,
        "key": null,
        "reason": "an array, composite or range value holding ciphertexts is exported as stored",
    })
}

/// Every row of every registered table that belongs to `subject`, encrypted columns decrypted
/// where the caller may (else left as ciphertext with the reason), and the subject's consent
/// history, as one document (layout in docs/formats.md). Rows are read with the caller's rights;
/// tables the caller cannot read are listed as skipped. Audited (without the subject).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn subject_export(subject: &str) -> JsonB {
    crate::pg::recovery::refuse_during_recovery("encml.subject_export()");
    refuse_with_conflicting_locks("subject_export", &["AccessExclusiveLock"]);
    let request = json!({ "op": "export", "subject": subject, "tenant": crate::keys::tenant_context::current() });
    in_own_session(request)
}

/// The export, run in the subject worker with the caller's roles (see `in_own_session`).
pub(super) fn export_here(subject: &str) -> Value {
    // Its queries run as the caller; no operator or function they name may resolve
    // through the caller's search_path (issue 27).
    crate::pg::identity::with_pinned_search_path(|| {
        let export_id = uuid::Uuid::new_v4().to_string();
        let mut tables = Vec::new();
        let mut skipped = Vec::new();
        let (mut rows_total, mut undecrypted_total) = (0usize, 0usize);
        for reg in registrations() {
            let skip = |reason: String| json!({ "table": reg.table, "identifier_column": reg.col, "reason": reason });
            if !has_table_privilege(reg.rel, "SELECT") {
                skipped.push(skip("the caller may not read the table".into()));
                continue;
            }
            // The rows are read as the owner (below): under the caller's own policies they would
            // be filtered by the owner's code run with the caller's rights (attacker round 6).
            if row_security_applies(reg.rel) {
                skipped.push(skip("row-level security of the table applies to the caller; its policies are the owner's code, which does not run with the caller's rights".into()));
                continue;
            }
            if let Some(reason) = unsearchable(&reg) {
                skipped.push(skip(reason));
                continue;
            }
            if row_security_applies_to_owner(reg.rel) {
                skipped.push(skip(FORCED_ROW_SECURITY.into()));
                continue;
            }
            if let Some(key) = reg.id_key {
                let id = *key.as_bytes();
                if !cache::current(&id).usable(Privilege::Encrypt) {
                    skipped.push(skip(format!(
                        "the caller may not encrypt with the identifier key {}",
                        catalog::uuid_string(&id)
                    )));
                    continue;
                }
            }
            let Some(search) = subject_predicate(&reg, subject) else {
                continue; // the subject is no value of the column: no rows
            };
            let (predicate, bound) = (search.on(&reg), search.bound);
            let (encrypted, containers) = encrypted_columns(reg.rel);
            let mut select = vec!["pg_catalog.to_jsonb(t)".to_string()];
            for (name, typ) in &encrypted {
                select.push(format!(
                    "encml.{}_send(t.{})",
                    typ.type_name(),
                    quote_ident(name)
                ));
            }
            let sql = format!(
                "SELECT {} FROM {} t WHERE {predicate}",
                select.join(", "),
                reg.table
            );
            let mut undecrypted = 0usize;
            // The rows are read as the table's owner in a security-restricted operation: the
            // owner's code on the table (row-security policies, casts of its column types to
            // json, a view's functions) runs with the owner's rights, never the caller's
            // (attacker round 3). The caller's right to read it was checked above; keys are
            // checked against the caller below, outside.
            let fetched: Vec<(Value, Vec<Option<Vec<u8>>>)> = as_owner_of(&reg, "reading", || {
                Spi::connect(|client| {
                    client
                        .select(&sql, None, &[bound.as_str().into()])
                        .or_spi_failed("")
                        .map(|r| {
                            let row = r
                                .get::<JsonB>(1)
                                .ok()
                                .flatten()
                                .map(|j| j.0)
                                .unwrap_or(Value::Null);
                            let bytes = (0..encrypted.len())
                                .map(|i| r.get::<Vec<u8>>(i + 2).ok().flatten())
                                .collect();
                            (row, bytes)
                        })
                        .collect()
                })
            });
            let rows: Vec<Value> = fetched
                .into_iter()
                .map(|(mut row, bytes)| {
                    for ((name, typ), bytes) in encrypted.iter().zip(bytes) {
                        let Some(bytes) = bytes else {
                            continue;
                        };
                        let shown = row[name.as_str()].clone();
                        let (value, opened) = exported_value(*typ, &bytes, &shown);
                        undecrypted += usize::from(!opened);
                        row[name.as_str()] = value;
                    }
                    for name in &containers {
                        let shown = row[name.as_str()].take();
                        if !shown.is_null() {
                            undecrypted += 1;
                            row[name.as_str()] = exported_container(shown);
                        }
                    }
                    row
                })
                .collect();
            rows_total += rows.len();
            undecrypted_total += undecrypted;
            tables.push(json!({
                "table": reg.table,
                "identifier_column": reg.col,
                "identifier": reg.kind.label(),
                "rows": rows,
                "undecrypted_values": undecrypted,
            }));
            // Columns only a table under it has are not in its rows (attacker round 13): say so.
            for (member, extra) in columns_only_under(&reg, false) {
                skipped.push(json!({
                    "table": crate::audit::table_name(member),
                    "identifier_column": reg.col,
                    "reason": format!("columns of its own, not in {} ({}), are not exported: register its identifier column too", reg.table, extra.join(", ")),
                }));
            }
            // Another session's temporary table under it, or a partition being detached, was left
            // out of the read (attacker rounds 12 and 13): say so.
            if let Some(pending) = detach_pending_in(&tree_of(reg.rel)) {
                skipped.push(json!({
                    "table": crate::audit::table_name(pending),
                    "identifier_column": reg.col,
                    "reason": format!("a partition of {} being detached (DETACH PENDING): its rows cannot be read", reg.table),
                }));
            }
            if let Some(temp) = temporary_in(&tree_of(reg.rel)) {
                skipped.push(json!({
                    "table": crate::audit::table_name(temp),
                    "identifier_column": reg.col,
                    "reason": format!("a temporary table of another session, under {}: its rows cannot be read", reg.table),
                }));
            }
        }
        let role = caller();
        let consents = if may_process_subjects(role) || has_privs_of_role_named(role, DPO) {
            crate::api::consent::history(subject)
        } else {
            skipped.push(json!({ "consents": true, "reason": format!("only members of {SUBJECT_PROCESSOR} or {DPO} read consent records") }));
            Value::Null
        };
        events::record(
            "subject_export",
            None,
            json!({
                "export_id": export_id,
                "tables": tables.len(),
                "rows": rows_total,
                "undecrypted_values": undecrypted_total,
                "skipped": skipped.len(),
            }),
        );
        let exported_at = Spi::get_one::<String>("SELECT pg_catalog.now()::text")
            .ok()
            .flatten()
            .unwrap_or_default();
        json!({
            "format": EXPORT_FORMAT,
            "export_id": export_id,
            "subject": subject,
            "exported_at": exported_at,
            "exported_by": role_name(role),
            "tables": tables,
            "skipped": skipped,
            "consents": consents,
        })
    })
}
