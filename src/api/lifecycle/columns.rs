//! The columns a re-encryption job works on: which kind of ciphertext a column holds (by type
//! OID, through domains), the SQL that moves one of its values to the current key version, and
//! which columns of the database hold values under given versions of a key.

use crate::pg::catalog_reads::{arg, read_rows, select_one};
use crate::pg::errors::{raise, raise_full};
use crate::pg::identity::as_extension_owner;
use crate::pg::sql_text::{quote_ident, quote_literal};
use crate::types::identity::{encrypted_type, Encrypted};
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};

/// What a column holds, and so how its values are re-encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// enc_bytea (tensors included): `encml.reencrypt(c, aad)`.
    EncBytea,
    /// det_text: `encml.det_reencrypt(c)`.
    DetText,
    /// ore_int8, ore_float8, ore_timestamptz: `encml.ore_reencrypt(c)`.
    Ore,
    /// jsonb with `encrypt_jsonb` fields: `encml.reencrypt_jsonb(c, aad)`.
    Jsonb,
    /// oid (or a domain over it, as contrib's `lo`) naming `lo_encrypt` large objects:
    /// `encml.lo_reencrypt(c)` writes a new object, the replaced one is unlinked when the job
    /// ends (`objects`).
    LargeObject,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::EncBytea => "enc_bytea",
            Kind::DetText => "det_text",
            Kind::Ore => "ore",
            Kind::Jsonb => "jsonb",
            Kind::LargeObject => "large_object",
        }
    }

    pub fn from_label(label: &str) -> Option<Kind> {
        [
            Kind::EncBytea,
            Kind::DetText,
            Kind::Ore,
            Kind::Jsonb,
            Kind::LargeObject,
        ]
        .into_iter()
        .find(|k| k.label() == label)
    }

    /// The kind of values of type `typoid` (a domain counts as its base type), if any.
    pub fn of_type(typoid: pg_sys::Oid) -> Option<Kind> {
        match encrypted_type(typoid) {
            Some(Encrypted::EncBytea) => Some(Kind::EncBytea),
            Some(Encrypted::DetText) => Some(Kind::DetText),
            Some(Encrypted::OreInt8 | Encrypted::OreFloat8 | Encrypted::OreTimestamptz) => {
                Some(Kind::Ore)
            }
            // SAFETY: a syscache walk down the domain's base types.
            None => match unsafe { pg_sys::getBaseType(typoid) } {
                pg_sys::JSONBOID => Some(Kind::Jsonb),
                pg_sys::OIDOID => Some(Kind::LargeObject),
                _ => None,
            },
        }
    }

    /// Whether its values are bound to an AAD the job must supply.
    pub fn takes_aad(self) -> bool {
        matches!(self, Kind::EncBytea | Kind::Jsonb)
    }
}

/// The kind of column `column` of table `rel`: 42703 if there is no such column, 42804 if it
/// holds nothing a job can re-encrypt.
pub fn kind_of(rel: pg_sys::Oid, column: &str) -> Kind {
    let typoid = select_one::<pg_sys::Oid>(
        "SELECT atttypid FROM pg_catalog.pg_attribute \
          WHERE attrelid = $1 AND attname = $2::name AND attnum > 0 AND NOT attisdropped",
        &[arg(rel), arg(column)],
    )
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column \"{column}\" of relation {} does not exist",
                relation_name(rel)
            ),
        )
    });
    Kind::of_type(typoid).unwrap_or_else(|| {
        raise_full(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "column \"{column}\" of relation {} holds no values a re-encryption job can move",
                relation_name(rel)
            ),
            None,
            Some(
                "Jobs re-encrypt enc_bytea (tensors too), det_text, ore_int8, ore_float8, \
                 ore_timestamptz, jsonb columns with encrypt_jsonb fields and oid columns naming \
                 lo_encrypt large objects, or domains over them."
                    .into(),
            ),
        )
    })
}

/// The relation's name, schema-qualified and quoted whatever the search_path, or its oid if it
/// no longer exists.
pub fn relation_name(rel: pg_sys::Oid) -> String {
    select_one::<String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[arg(rel)],
    )
    .unwrap_or_else(|| rel.to_u32().to_string())
}

/// The template of an AAD ('patients.diagnosis:{id}': literal text, `{column}` for the text
/// form of a column of the row, `{{` and `}}` for braces) as a SQL expression over the row.
/// Only column references and literals: a template is never code. 22023 for a malformed one,
/// 42703 for a column the table does not have.
pub fn aad_expression(rel: pg_sys::Oid, template: &str) -> String {
    let malformed = |why: &str| -> ! {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid AAD template {template:?}: {why}"),
            None,
            Some(
                "Write literal text with {column} where the text form of a column of the row \
                 goes, e.g. 'patients.diagnosis:{id}'; {{ and }} stand for braces."
                    .into(),
            ),
        )
    };
    let mut parts: Vec<String> = Vec::new();
    let mut literal = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '}' => malformed("a } without its {"),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => malformed("a { without its }"),
                    }
                }
                if name.is_empty() {
                    malformed("an empty {}");
                }
                let exists = select_one::<bool>(
                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1 \
                       AND attname = $2::name AND attnum > 0 AND NOT attisdropped)",
                    &[arg(rel), arg(name.as_str())],
                )
                .unwrap_or(false);
                if !exists {
                    raise(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                        format!(
                            "AAD template names column \"{name}\", which relation {} does not have",
                            relation_name(rel)
                        ),
                    );
                }
                if !literal.is_empty() {
                    parts.push(quote_literal(&std::mem::take(&mut literal)));
                }
                parts.push(format!(
                    "COALESCE(({})::pg_catalog.text, '')",
                    quote_ident(&name)
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(quote_literal(&literal));
    }
    // A NULL column gives its empty text (a NULL AAD would mean "none"); `||` rather than
    // concat(), which takes at most 100 arguments.
    format!("({})", parts.join(" OPERATOR(pg_catalog.||) "))
}

/// The expression that moves a value of `column` to the current version of its key.
pub fn reencrypt_expression(kind: Kind, column: &str, aad: Option<&str>) -> String {
    let c = quote_ident(column);
    let aad = aad.unwrap_or("NULL");
    match kind {
        Kind::EncBytea => format!("encml.reencrypt({c}, {aad})"),
        Kind::DetText => format!("encml.det_reencrypt({c})"),
        Kind::Ore => format!("encml.ore_reencrypt({c})"),
        Kind::Jsonb => format!("encml.reencrypt_jsonb({c}, {aad})"),
        Kind::LargeObject => format!("encml.lo_reencrypt({c})"),
    }
}

/// The condition selecting values of `column` under the versions `$2` (int[]) of key `$1`
/// (uuid), or for jsonb documents holding a field under one of them: `$3` (text[], LIKE
/// patterns of their headers, `jsonb_patterns`), or for large objects those whose first
/// bytes are one of `$4` (bytea[], `catalog::large_object_prefix`): that one reads
/// pg_largeobject, which only a superuser may (the worker; the extension owner).
pub fn behind_condition(kind: Kind, column: &str) -> String {
    let c = quote_ident(column);
    match kind {
        Kind::Jsonb => format!("({c})::pg_catalog.text OPERATOR(pg_catalog.~~) ANY ($3)"),
        // Correlated, so that each row is an index lookup on (loid, pageno).
        Kind::LargeObject => format!(
            "EXISTS (SELECT FROM pg_catalog.pg_largeobject l \
                      WHERE l.loid OPERATOR(pg_catalog.=) {c} AND l.pageno OPERATOR(pg_catalog.=) 0 \
                        AND pg_catalog.substring(l.data, 1, 24) OPERATOR(pg_catalog.=) ANY ($4))"
        ),
        _ => format!(
            "encml.key_id({c}) OPERATOR(pg_catalog.=) $1 \
             AND encml.key_version({c}) OPERATOR(pg_catalog.=) ANY ($2)"
        ),
    }
}

/// The condition that a row of `alias` (empty: unqualified) lies in heap blocks `[from, to)`:
/// a TID range a batch's statement scans.
pub fn block_range(alias: &str, from: i64, to: i64) -> String {
    let ctid = if alias.is_empty() {
        "ctid".to_string()
    } else {
        format!("{alias}.ctid")
    };
    format!(
        "{ctid} OPERATOR(pg_catalog.>=) '({from},0)'::pg_catalog.tid \
         AND {ctid} OPERATOR(pg_catalog.<) '({to},0)'::pg_catalog.tid"
    )
}

/// `update` (an UPDATE of `column` with `RETURNING`-free text) wrapped so that it returns how
/// many values it actually moved: rows whose new value no longer matches `condition` (a table
/// owner's BEFORE trigger that keeps the old value is not counted).
pub fn counting_moves(update: &str, column: &str, condition: &str) -> String {
    let c = quote_ident(column);
    format!(
        "WITH moved AS ({update} RETURNING {c}) \
         SELECT pg_catalog.count(*) FROM moved WHERE NOT coalesce(({condition}), false)"
    )
}

/// LIKE patterns matching the text of a jsonb document that holds an `encrypt_jsonb` field
/// under one of `versions` of the key (`catalog::jsonb_field_pattern`, one per version).
pub fn jsonb_patterns(id: &[u8; 16], versions: &[u32]) -> Vec<String> {
    versions
        .iter()
        .map(|v| crate::keys::catalog::jsonb_field_pattern(id, *v))
        .collect()
}

/// The table as a query reads it: `ONLY` the table itself (not its inheritance children), or a
/// Citus table whole (a distributed query over its shards).
pub fn scanned(rel: pg_sys::Oid) -> String {
    if crate::pg::citus::is_citus_table(rel) {
        relation_name(rel)
    } else {
        format!("ONLY {}", relation_name(rel))
    }
}

/// How many values of `column` are under the versions `behind_args` names, as the current role
/// reads the table.
pub fn count_behind(
    rel: pg_sys::Oid,
    kind: Kind,
    column: &str,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
) -> i64 {
    select_one::<i64>(
        &format!(
            "SELECT count(*) FROM {} WHERE {}",
            scanned(rel),
            behind_condition(kind, column)
        ),
        args,
    )
    .unwrap_or(0)
}

/// The arguments of `behind_condition`: $1 key, $2 versions, $3 jsonb patterns, $4 large
/// object prefixes.
pub fn behind_args(id: &[u8; 16], versions: &[u32]) -> [(pg_sys::Oid, Option<pg_sys::Datum>); 4] {
    let versions_i32: Vec<i32> = versions.iter().map(|v| *v as i32).collect();
    let prefixes: Vec<Vec<u8>> = versions
        .iter()
        .map(|v| crate::keys::catalog::large_object_prefix(id, *v))
        .collect();
    [
        arg(Uuid::from_bytes(*id)),
        arg(versions_i32),
        arg(jsonb_patterns(id, versions)),
        arg(prefixes),
    ]
}

/// A column of the database with values under older versions of a key.
pub struct Behind {
    pub rel: pg_sys::Oid,
    pub column: String,
    pub kind: Kind,
    /// How many; `LOCKED` when another transaction holds a lock that keeps the table from being
    /// read now (it was not counted, and may hold some).
    pub values: i64,
}

/// `Behind::values` of a table that could not be read without waiting for a lock.
pub const LOCKED: i64 = -1;

/// Takes the lock a read of `rel` takes, if no other transaction is in the way: scans over every
/// table of the database never wait for a lock (a role holding an exclusive lock on one of its
/// tables in an idle transaction stalled the lifecycle worker and key administrators' commands,
/// attacker re-check of issue 31). The lock is kept to the end of the transaction, as a read's.
pub fn lock_for_reading(rel: pg_sys::Oid) -> bool {
    // SAFETY: a conditional lock request on a relation oid, released at transaction end; it
    // never waits, and a relation dropped meanwhile is simply not found by the read after it.
    unsafe { pg_sys::ConditionalLockRelationOid(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE) }
}

/// Every column of a plain table of this database (not the extension's own, not temporary, not
/// a Citus reference or local table; a distributed table counts its shards' rows)
/// that holds values (or, for jsonb, documents with fields) under `versions` of the key, with
/// their number. Runs as the extension owner: tables the caller cannot read are found too (only
/// their names and counts leave this function, for the caller's rights to be checked on them).
pub fn holding(id: &[u8; 16], versions: &[u32]) -> Vec<Behind> {
    columns_with(id, versions, false)
}

/// What still uses `version` of the key, for retiring it or clearing a compromise: the columns
/// of `holding` and of populated materialized views (which no job rewrites: refresh them), by
/// name with their counts, and the encrypted large objects under it (`catalog::large_objects_using`:
/// every object, also those no row names). Large-object columns are not listed again. A table
/// another transaction has locked is listed as possibly using it, with a count of 0.
pub fn users_of(id: &[u8; 16], version: u32) -> Vec<(String, i64)> {
    let mut users: Vec<(String, i64)> = columns_with(id, &[version], true)
        .into_iter()
        .filter(|b| b.kind != Kind::LargeObject || b.values == LOCKED)
        .map(|b| {
            let name = format!("{}.{}", relation_name(b.rel), quote_ident(&b.column));
            match b.kind {
                _ if b.values == LOCKED => (
                    format!("{name} (locked by another transaction: not counted)"),
                    0,
                ),
                Kind::Jsonb => (format!("{name} (jsonb fields)"), b.values),
                _ => (name, b.values),
            }
        })
        .collect();
    users.extend(as_extension_owner(|| {
        crate::keys::catalog::large_objects_using(id, version)
    }));
    users
}

fn columns_with(id: &[u8; 16], versions: &[u32], with_matviews: bool) -> Vec<Behind> {
    if versions.is_empty() {
        return Vec::new();
    }
    as_extension_owner(|| {
        let candidates = read_rows(
            "SELECT a.attrelid, a.attname::text, a.atttypid FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
              WHERE (c.relkind = 'r' OR ($2 AND c.relkind = 'm' AND c.relispopulated)) \
                AND c.relpersistence <> 't' AND a.attnum > 0 \
                AND NOT a.attisdropped AND c.oid >= $1 \
                AND c.relnamespace <> (SELECT e.extnamespace FROM pg_catalog.pg_extension e \
                                        WHERE e.extname = 'pg_encrypt_ml') \
              ORDER BY a.attrelid, a.attnum",
            // Not the system catalogs (pg_largeobject's loid is an oid column too).
            &[
                arg(pg_sys::Oid::from(pg_sys::FirstNormalObjectId)),
                arg(with_matviews),
            ],
            0,
            |row| {
                (
                    row.get::<pg_sys::Oid>(1).unwrap_or(pg_sys::InvalidOid),
                    row.get::<String>(2).unwrap_or_default(),
                    row.get::<pg_sys::Oid>(3).unwrap_or(pg_sys::InvalidOid),
                )
            },
        );
        let args = behind_args(id, versions);
        let large_objects_readable = crate::keys::catalog::large_objects_readable();
        candidates
            .into_iter()
            .filter_map(|(rel, column, typoid)| {
                let kind = Kind::of_type(typoid)?;
                // A Citus distributed table is counted through a distributed query (its rows
                // are in its shards); reference and Citus local tables are not covered, nor
                // large objects named from a Citus table (they live on one node).
                if crate::pg::citus::is_citus_table(rel)
                    && (kind == Kind::LargeObject || !crate::pg::citus::is_distributed_table(rel))
                {
                    return None;
                }
                if kind == Kind::LargeObject && !large_objects_readable {
                    return None;
                }
                let values = if lock_for_reading(rel) {
                    count_behind(rel, kind, &column, &args)
                } else {
                    LOCKED
                };
                (values > 0 || values == LOCKED).then_some(Behind {
                    rel,
                    column,
                    kind,
                    values,
                })
            })
            .collect()
    })
}

/// The name of a unique index (or constraint) on `column` of `rel` alone (one key column, no
/// expression, no predicate), if there is one: a det_text job then leaves a value whose
/// re-encryption would collide with it (a duplicate written under the new version during the
/// job) rather than failing on it (`duplicate_guard`).
pub fn unique_alone(rel: pg_sys::Oid, column: &str) -> Option<String> {
    select_one::<String>(
        "SELECT c.relname::text FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
          WHERE i.indrelid = $1 AND a.attname = $2::name AND i.indisunique AND i.indisvalid \
            AND i.indnkeyatts = 1 AND i.indexprs IS NULL AND i.indpred IS NULL \
          ORDER BY c.relname LIMIT 1",
        &[arg(rel), arg(column)],
    )
}

/// For a det_text column with a unique index of its own (`unique_alone`): the condition that a
/// row's value, re-encrypted, is not already in the column (a value written under the new
/// version while the job ran, equal to this older one), so that the batch leaves it instead of
/// failing on the unique index; the job reports such values at its end.
pub fn duplicate_guard(rel: pg_sys::Oid, column: &str) -> String {
    let c = quote_ident(column);
    let table = relation_name(rel);
    format!(
        "NOT EXISTS (SELECT FROM ONLY {table} d \
                      WHERE d.{c} OPERATOR(pg_catalog.=) encml.det_reencrypt({table}.{c}))"
    )
}
