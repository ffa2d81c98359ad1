//! Reads and writes of the key catalog tables (`encml.data_keys`, `encml.data_key_versions`,
//! `encml.master_key_rotations`). Every statement runs as the extension owner with a pinned
//! search_path (see `pg::identity`); callers check the calling role's rights first.

use crate::pg::catalog_reads::{arg, oid_arg, read_rows, select_one, Row};
use crate::pg::errors::raise;
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use encml_core::kdf::Purpose;
use pgrx::datum::{FromDatum, IntoDatum};
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub purpose: Purpose,
    pub destroyed_at: Option<String>,
    pub current_version: u32,
    pub tenant: Option<String>,
    pub created_by: pg_sys::Oid,
    /// Made by `tenant_key()`: belongs to its tenant, administered only by admins.
    pub managed: bool,
}

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub version: u32,
    pub status: String,
    pub wrapped: Option<Vec<u8>>,
    pub fingerprint: Option<String>,
    pub retired_at: Option<String>,
}

pub fn uuid_string(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).to_string()
}

fn parse_purpose(label: &str) -> Purpose {
    Purpose::from_label(label).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("unknown key purpose {label:?} in the key catalog"),
        )
    })
}

/// The key row and, if it exists, the requested version (the current one when `version` is None).
/// `for_update` locks the key row against concurrent rotation or destruction.
pub fn load(
    id: &[u8; 16],
    version: Option<u32>,
    for_update: bool,
) -> Option<(KeyRow, Option<VersionRow>)> {
    let sql = format!(
        "SELECT k.purpose, k.destroyed_at::text, k.current_version, k.tenant, k.created_by::oid, k.managed, \
                v.version, v.status, v.wrapped_key, v.master_key_fingerprint, v.retired_at::text \
           FROM encml.data_keys k \
           LEFT JOIN encml.data_key_versions v \
             ON v.key_id = k.id AND v.version = coalesce($2, k.current_version) \
          WHERE k.id = $1 {}",
        if for_update { "FOR UPDATE OF k" } else { "" }
    );
    as_extension_owner(|| {
        if for_update {
            // Update mode: a fresh snapshot after the lock, so a concurrent rotation that
            // committed while we waited is seen.
            Spi::connect_mut(|client| {
                let args = [
                    Uuid::from_bytes(*id).into(),
                    version.map(|v| v as i32).into(),
                ];
                let table = client
                    .update(sql.as_str(), Some(1), &args)
                    .or_spi_failed("key catalog query failed");
                table.into_iter().next().map(|row| parse_key_row(&row))
            })
        } else {
            let args = [arg(Uuid::from_bytes(*id)), arg(version.map(|v| v as i32))];
            read_rows(&sql, &args, 1, parse_key_row).into_iter().next()
        }
    })
}

/// Column access shared by pgrx's SPI rows and `catalog_reads::Row`.
trait Columns {
    fn col<T: FromDatum + IntoDatum>(&self, n: usize) -> Option<T>;
}

impl Columns for Row {
    fn col<T: FromDatum + IntoDatum>(&self, n: usize) -> Option<T> {
        self.get::<T>(n as i32)
    }
}

impl Columns for pgrx::spi::SpiHeapTupleData<'_> {
    fn col<T: FromDatum + IntoDatum>(&self, n: usize) -> Option<T> {
        self.get::<T>(n).or_spi_failed("key catalog query failed")
    }
}

fn parse_key_row(row: &impl Columns) -> (KeyRow, Option<VersionRow>) {
    let key = KeyRow {
        purpose: parse_purpose(&row.col::<String>(1).unwrap_or_default()),
        destroyed_at: row.col::<String>(2),
        current_version: row.col::<i32>(3).unwrap_or(0) as u32,
        tenant: row.col::<String>(4),
        created_by: row.col::<pg_sys::Oid>(5).unwrap_or(pg_sys::InvalidOid),
        managed: row.col::<bool>(6).unwrap_or(false),
    };
    let version = row.col::<i32>(7).map(|v| VersionRow {
        version: v as u32,
        status: row.col::<String>(8).unwrap_or_default(),
        wrapped: row.col::<Vec<u8>>(9),
        fingerprint: row.col::<String>(10),
        retired_at: row.col::<String>(11),
    });
    (key, version)
}

/// Whether the key catalog holds no key at all (destroyed ones count): a database being
/// restored before the catalog's own data arrives looks like this.
pub fn is_empty() -> bool {
    as_extension_owner(|| {
        select_one::<bool>("SELECT NOT EXISTS (SELECT FROM encml.data_keys)", &[]).unwrap_or(false)
    })
}

pub fn name_taken(name: &str, tenant: Option<&str>) -> bool {
    as_extension_owner(|| {
        select_one::<bool>(
            "SELECT EXISTS (SELECT FROM encml.data_keys \
              WHERE name = $1 AND coalesce(tenant, '') = coalesce($2, '') \
                AND destroyed_at IS NULL)",
            &[arg(name), arg(tenant)],
        )
        .unwrap_or(false)
    })
}

pub fn insert_key(
    id: &[u8; 16],
    name: &str,
    purpose: Purpose,
    tenant: Option<&str>,
    created_by: pg_sys::Oid,
    wrapped: &[u8],
    fingerprint: &str,
) {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "INSERT INTO encml.data_keys (id, name, purpose, tenant, created_by) \
                     VALUES ($1, $2, $3, $4, $5::regrole)",
                    None,
                    &[
                        Uuid::from_bytes(*id).into(),
                        name.into(),
                        purpose.label().into(),
                        tenant.into(),
                        oid_arg(created_by),
                    ],
                )
                .or_spi_failed("key catalog query failed");
            insert_version(client, id, 1, wrapped, fingerprint);
        })
    })
}

fn insert_version(
    client: &mut pgrx::spi::SpiClient<'_>,
    id: &[u8; 16],
    version: u32,
    wrapped: &[u8],
    fingerprint: &str,
) {
    client
        .update(
            "INSERT INTO encml.data_key_versions (key_id, version, status, wrapped_key, master_key_fingerprint) \
             VALUES ($1, $2, 'active', $3, $4)",
            None,
            &[Uuid::from_bytes(*id).into(), (version as i32).into(), wrapped.into(), fingerprint.into()],
        )
        .or_spi_failed("key catalog query failed");
}

/// Adds `version` and makes it current. The caller holds the key row lock.
pub fn add_version(id: &[u8; 16], version: u32, wrapped: &[u8], fingerprint: &str) {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            insert_version(client, id, version, wrapped, fingerprint);
            client
                .update(
                    "UPDATE encml.data_keys SET current_version = $2, rotated_at = now() WHERE id = $1",
                    None,
                    &[Uuid::from_bytes(*id).into(), (version as i32).into()],
                )
                .or_spi_failed("key catalog query failed");
        })
    });
    invalidate();
}

/// Erases the wrapped material of every version of a key. Returns the number of versions erased.
pub fn destroy(id: &[u8; 16]) -> i64 {
    destroy_where("k.id = $1", Uuid::from_bytes(*id).into()).1
}

/// Crypto-shreds every live key of a tenant. Returns (keys destroyed, versions erased).
pub fn destroy_tenant_keys(tenant: &str) -> (i64, i64) {
    destroy_where("k.tenant = $1", tenant.into())
}

/// Crypto-shreds every key `subject_key()` made for a data subject and forgets which keys they
/// were. Returns (keys destroyed, versions erased).
pub fn destroy_subject_keys(subject: &str) -> (i64, i64) {
    let counts = destroy_where(
        "k.id IN (SELECT s.key_id FROM encml.subject_keys s WHERE s.subject = $1)",
        subject.into(),
    );
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM encml.subject_keys WHERE subject = $1",
            &[subject.into()],
        )
        .or_spi_failed("key catalog query failed")
    });
    counts
}

fn destroy_where(filter: &str, value: pgrx::datum::DatumWithOid<'_>) -> (i64, i64) {
    let counts = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let keys = client
                .update(
                    &format!(
                        "UPDATE encml.data_keys k SET destroyed_at = now() \
                          WHERE {filter} AND k.destroyed_at IS NULL RETURNING k.id"
                    ),
                    None,
                    std::slice::from_ref(&value),
                )
                .or_spi_failed("key catalog query failed")
                .len() as i64;
            // Two statements: Citus refuses now() inside COALESCE in a write to a
            // distributed (reference) table.
            client
                .update(
                    &format!(
                        "UPDATE encml.data_key_versions v SET retired_at = now() \
                           FROM encml.data_keys k \
                          WHERE k.id = v.key_id AND {filter} AND v.status <> 'destroyed' \
                            AND v.retired_at IS NULL"
                    ),
                    None,
                    std::slice::from_ref(&value),
                )
                .or_spi_failed("key catalog query failed");
            let versions = client
                .update(
                    &format!(
                        "UPDATE encml.data_key_versions v \
                            SET wrapped_key = NULL, status = 'destroyed' \
                           FROM encml.data_keys k \
                          WHERE k.id = v.key_id AND {filter} AND v.status <> 'destroyed'"
                    ),
                    None,
                    std::slice::from_ref(&value),
                )
                .or_spi_failed("key catalog query failed")
                .len() as i64;
            (keys, versions)
        })
    });
    invalidate();
    counts
}

pub fn retire(id: &[u8; 16], version: u32) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE encml.data_key_versions \
                SET wrapped_key = NULL, status = 'retired', retired_at = now() \
              WHERE key_id = $1 AND version = $2",
            &[Uuid::from_bytes(*id).into(), (version as i32).into()],
        )
        .or_spi_failed("key catalog query failed")
    });
    invalidate();
}

pub struct WrappedVersion {
    pub key_id: [u8; 16],
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub fingerprint: String,
}

/// Every live version wrapped under a master key other than `current`, locked for update.
pub fn versions_not_under(current: &str) -> Vec<WrappedVersion> {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "SELECT key_id, version, wrapped_key, master_key_fingerprint \
                       FROM encml.data_key_versions \
                      WHERE wrapped_key IS NOT NULL AND master_key_fingerprint IS DISTINCT FROM $1 \
                      ORDER BY key_id, version FOR UPDATE",
                    None,
                    &[current.into()],
                )
                .or_spi_failed("key catalog query failed")
                .map(|row| WrappedVersion {
                    key_id: *row
                        .get::<Uuid>(1)
                        .ok()
                        .flatten()
                        .expect("key_id is NOT NULL")
                        .as_bytes(),
                    version: row
                        .get::<i32>(2)
                        .ok()
                        .flatten()
                        .expect("version is NOT NULL") as u32,
                    wrapped: row
                        .get::<Vec<u8>>(3)
                        .ok()
                        .flatten()
                        .expect("filtered on NOT NULL"),
                    fingerprint: row.get::<String>(4).ok().flatten().unwrap_or_default(),
                })
                .collect()
        })
    })
}

pub fn set_wrapped(v: &WrappedVersion, wrapped: &[u8], fingerprint: &str) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE encml.data_key_versions SET wrapped_key = $3, master_key_fingerprint = $4 \
              WHERE key_id = $1 AND version = $2",
            &[
                Uuid::from_bytes(v.key_id).into(),
                (v.version as i32).into(),
                wrapped.into(),
                fingerprint.into(),
            ],
        )
        .or_spi_failed("key catalog query failed")
    });
}

pub fn log_master_rotation(fingerprint: &str, rewrapped: i32, by: pg_sys::Oid) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO encml.master_key_rotations (master_key_fingerprint, keys_rewrapped, rotated_by) \
             VALUES ($1, $2, $3::regrole)",
            &[fingerprint.into(), rewrapped.into(), oid_arg(by)],
        )
        .or_spi_failed("key catalog query failed")
    });
    invalidate();
}

/// Tells every backend (at commit) and this one (now) that key rows changed.
pub fn invalidate() {
    // SAFETY: a guarded binding taking an oid (key_table_oid raises rather than returning an
    // invalid one); it only queues an invalidation message for the transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(key_table_oid()) };
    crate::keys::cache::clear();
}

/// The oid of the key-version table, for the invalidation callback.
pub fn key_table_oid() -> pg_sys::Oid {
    as_extension_owner(|| {
        select_one::<pg_sys::Oid>("SELECT 'encml.data_key_versions'::regclass::oid", &[])
            .expect("the key table exists")
    })
}

/// The LIKE pattern matching the text of a jsonb document that holds an `encrypt_jsonb` field
/// under the key version: its ciphertext string starts with the base64 of the (algorithm 1)
/// header, which is fixed by key id and version.
pub fn jsonb_field_pattern(id: &[u8; 16], version: u32) -> String {
    use base64::Engine;
    let header = encml_core::format::Header::new(*id, version).encode();
    format!(
        "%\"{}{}%",
        encml_core::json_fields::PREFIX,
        base64::engine::general_purpose::STANDARD.encode(header)
    )
}

/// Whether the current role may read pg_largeobject (a superuser may), where the headers of
/// large objects are found without opening each.
pub fn large_objects_readable() -> bool {
    select_one::<bool>(
        "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_largeobject', 'SELECT')",
        &[],
    )
    .unwrap_or(false)
}

/// The first 24 bytes of every encrypted large object under the key version (its stream
/// header's magic, algorithm, key id and version: docs/formats.md).
pub fn large_object_prefix(id: &[u8; 16], version: u32) -> Vec<u8> {
    let mut prefix = encml_core::format::Header::new(*id, version).encode();
    prefix[0..2].copy_from_slice(&encml_core::stream::MAGIC);
    prefix[3] = encml_core::stream::ALG_STREAM_GCM;
    prefix.to_vec()
}

/// Encrypted large objects under the key version (their first 24 bytes are fixed by it), when
/// the current role may read pg_largeobject (a superuser may).
pub fn large_objects_using(id: &[u8; 16], version: u32) -> Vec<(String, i64)> {
    if !large_objects_readable() {
        return Vec::new();
    }
    let n = select_one::<i64>(
        "SELECT count(*) FROM pg_catalog.pg_largeobject \
          WHERE pageno = 0 AND substring(data FROM 1 FOR 24) = $1",
        &[arg(large_object_prefix(id, version))],
    )
    .unwrap_or(0);
    if n > 0 {
        vec![("large objects (lo_encrypt)".to_string(), n)]
    } else {
        Vec::new()
    }
}

/// The versions of a key that can still decrypt, newest first.
pub fn usable_versions(id: &[u8; 16]) -> Vec<u32> {
    as_extension_owner(|| {
        read_rows(
            "SELECT version FROM encml.data_key_versions \
              WHERE key_id = $1 AND status = 'active' ORDER BY version DESC",
            &[arg(Uuid::from_bytes(*id))],
            0,
            |row| row.get::<i32>(1).unwrap_or(0) as u32,
        )
    })
}

/// The versions of a key that searches encrypt a term under (`det_encrypt_all_versions`),
/// newest first: the usable ones, less those reported compromised (`encml.compromise_key`),
/// under which nothing new is encrypted.
pub fn searchable_versions(id: &[u8; 16]) -> Vec<u32> {
    if crate::pg::catalog_reads::extension_relation(c"key_compromises") == pg_sys::InvalidOid {
        return usable_versions(id); // a schema older than 0.2.0
    }
    as_extension_owner(|| {
        read_rows(
            "SELECT v.version FROM encml.data_key_versions v \
              WHERE v.key_id = $1 AND v.status = 'active' \
                AND NOT EXISTS (SELECT FROM encml.key_compromises c \
                                 WHERE c.key_id = v.key_id AND c.version = v.version) \
              ORDER BY v.version DESC",
            &[arg(Uuid::from_bytes(*id))],
            0,
            |row| row.get::<i32>(1).unwrap_or(0) as u32,
        )
    })
}

/// Names of the keys `encml.tenant_key()` manages start with this; `create_key` refuses it.
pub const MANAGED_NAME_PREFIX: &str = "tenant_key:";

pub fn managed_key_name(purpose: Purpose) -> String {
    format!("{MANAGED_NAME_PREFIX}{}", purpose.label())
}

const MANAGED_KEY_SQL: &str = "SELECT id FROM encml.data_keys \
      WHERE tenant = $1 AND purpose = $2 AND managed AND destroyed_at IS NULL";

/// The live key `tenant_key()` manages for a tenant and purpose.
pub fn managed_key(tenant: &str, purpose: Purpose) -> Option<[u8; 16]> {
    as_extension_owner(|| select_one::<Uuid>(MANAGED_KEY_SQL, &[arg(tenant), arg(purpose.label())]))
        .map(|u| *u.as_bytes())
}

/// The same, read with a new snapshot (in READ COMMITTED), so that a key another transaction
/// committed while this one waited on it is found.
pub fn managed_key_latest(tenant: &str, purpose: Purpose) -> Option<[u8; 16]> {
    key_id_with_new_snapshot(MANAGED_KEY_SQL, tenant, purpose)
}

/// The key id `sql` finds for (owner, purpose), run in update mode so that it takes a new
/// snapshot: a key another transaction committed while this one waited on it is seen.
fn key_id_with_new_snapshot(sql: &str, owner: &str, purpose: Purpose) -> Option<[u8; 16]> {
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(sql, Some(1), &[owner.into(), purpose.label().into()])
                .or_spi_failed("key catalog query failed")
                .next()
                .and_then(|row| row.get::<Uuid>(1).or_spi_failed("key catalog query failed"))
        })
    })
    .map(|u| *u.as_bytes())
}

/// Inserts the managed key of a tenant for a purpose, unless another transaction made one first
/// (then nothing is inserted and false is returned).
pub fn insert_managed_key(
    id: &[u8; 16],
    tenant: &str,
    purpose: Purpose,
    created_by: pg_sys::Oid,
    wrapped: &[u8],
    fingerprint: &str,
) -> bool {
    crate::pg::citus::refuse_catalog_write_in_task("creating a tenant key");
    let inserted = as_extension_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "WITH k AS ( \
                        INSERT INTO encml.data_keys (id, name, purpose, tenant, created_by, managed) \
                        VALUES ($1, $2, $3, $4, $5::regrole, true) \
                        ON CONFLICT ((coalesce(tenant, '')), name) WHERE destroyed_at IS NULL \
                        DO NOTHING RETURNING id) \
                     INSERT INTO encml.data_key_versions \
                            (key_id, version, status, wrapped_key, master_key_fingerprint) \
                     SELECT id, 1, 'active', $6, $7 FROM k RETURNING key_id",
                    None,
                    &[
                        Uuid::from_bytes(*id).into(),
                        managed_key_name(purpose).into(),
                        purpose.label().into(),
                        tenant.into(),
                        oid_arg(created_by),
                        wrapped.into(),
                        fingerprint.into(),
                    ],
                )
                .or_spi_failed("key catalog query failed")
                .len()
                == 1
        })
    });
    inserted
}

/// Names of the keys `encml.subject_key()` makes start with this; `create_key` refuses it. The
/// name holds the purpose and the key's own id, never the subject.
pub const SUBJECT_KEY_PREFIX: &str = "subject_key:";

const SUBJECT_KEY_SQL: &str = "SELECT s.key_id FROM encml.subject_keys s \
      JOIN encml.data_keys k ON k.id = s.key_id AND k.destroyed_at IS NULL \
      WHERE s.subject = $1 AND s.purpose = $2";

/// The live key `subject_key()` made for a subject and purpose; `latest` reads with a new
/// snapshot, to find a key a concurrent transaction committed while this one waited on it.
pub fn subject_key(subject: &str, purpose: Purpose, latest: bool) -> Option<[u8; 16]> {
    if latest {
        return key_id_with_new_snapshot(SUBJECT_KEY_SQL, subject, purpose);
    }
    as_extension_owner(|| {
        select_one::<Uuid>(SUBJECT_KEY_SQL, &[arg(subject), arg(purpose.label())])
    })
    .map(|u| *u.as_bytes())
}

/// Inserts a subject's key for a purpose (owned by the extension: `managed`, no tenant), or
/// replaces one an administrator destroyed, unless another transaction made one first (then
/// nothing is inserted and false is returned).
pub fn insert_subject_key(
    id: &[u8; 16],
    subject: &str,
    purpose: Purpose,
    created_by: pg_sys::Oid,
    wrapped: &[u8],
    fingerprint: &str,
) -> bool {
    crate::pg::citus::refuse_catalog_write_in_task("creating a subject key");
    let name = format!(
        "{SUBJECT_KEY_PREFIX}{}:{}",
        purpose.label(),
        uuid_string(id)
    );
    // Plain statements, no data-modifying CTE or subquery in an INSERT: Citus plans neither on
    // the catalog's reference tables (subject_key failed on every Citus coordinator).
    as_extension_owner(|| {
        Spi::connect_mut(|client| {
            let key = Uuid::from_bytes(*id);
            let mut claimed = client
                .update(
                    "INSERT INTO encml.subject_keys (subject, purpose, key_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (subject, purpose) DO NOTHING RETURNING key_id",
                    None,
                    &[subject.into(), purpose.label().into(), key.into()],
                )
                .or_spi_failed("key catalog query failed")
                .len()
                == 1;
            if !claimed {
                // The subject had a key: replaced only if it was destroyed (an erased subject
                // seen again), and only if nobody replaced it meanwhile.
                let destroyed: Option<Uuid> = client
                    .select(
                        "SELECT s.key_id FROM encml.subject_keys s \
                           JOIN encml.data_keys d ON d.id = s.key_id \
                          WHERE s.subject = $1 AND s.purpose = $2 AND d.destroyed_at IS NOT NULL",
                        None,
                        &[subject.into(), purpose.label().into()],
                    )
                    .or_spi_failed("key catalog query failed")
                    .next()
                    .and_then(|r| r.get(1).ok().flatten());
                if let Some(old) = destroyed {
                    claimed = client
                        .update(
                            "UPDATE encml.subject_keys SET key_id = $3, created_at = now() \
                              WHERE subject = $1 AND purpose = $2 AND key_id = $4 RETURNING key_id",
                            None,
                            &[
                                subject.into(),
                                purpose.label().into(),
                                key.into(),
                                old.into(),
                            ],
                        )
                        .or_spi_failed("key catalog query failed")
                        .len()
                        == 1;
                }
            }
            if !claimed {
                return false;
            }
            client
                .update(
                    "INSERT INTO encml.data_keys (id, name, purpose, tenant, created_by, managed) \
                     VALUES ($1, $2, $3, NULL, $4::regrole, true)",
                    None,
                    &[
                        key.into(),
                        name.as_str().into(),
                        purpose.label().into(),
                        oid_arg(created_by),
                    ],
                )
                .or_spi_failed("key catalog query failed");
            client
                .update(
                    "INSERT INTO encml.data_key_versions \
                            (key_id, version, status, wrapped_key, master_key_fingerprint) \
                     VALUES ($1, 1, 'active', $2, $3)",
                    None,
                    &[key.into(), wrapped.into(), fingerprint.into()],
                )
                .or_spi_failed("key catalog query failed");
            true
        })
    })
}

/// How many keys of a tenant are not destroyed.
pub fn live_keys_of_tenant(tenant: &str) -> i64 {
    as_extension_owner(|| {
        select_one::<i64>(
            "SELECT count(*) FROM encml.data_keys WHERE tenant = $1 AND destroyed_at IS NULL",
            &[arg(tenant)],
        )
        .unwrap_or(0)
    })
}

/// Records a per-key privilege (no-op if already granted); every backend drops its cached
/// answers. Returns whether a row was added.
pub fn grant(id: &[u8; 16], grantee: pg_sys::Oid, privilege: &str, by: pg_sys::Oid) -> bool {
    let added = as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH i AS (INSERT INTO encml.key_grants (key_id, grantee, privilege, granted_by) \
                        VALUES ($1, $2::oid::regrole, $3, $4::oid::regrole) ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT EXISTS (SELECT FROM i)",
            &[
                Uuid::from_bytes(*id).into(),
                oid_arg(grantee),
                privilege.into(),
                oid_arg(by),
            ],
        )
        .or_spi_failed("key catalog query failed")
        .unwrap_or(false)
    });
    invalidate();
    added
}

/// Removes a per-key privilege. Returns whether a row was removed.
pub fn revoke(id: &[u8; 16], grantee: pg_sys::Oid, privilege: &str) -> bool {
    let removed = as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH d AS (DELETE FROM encml.key_grants \
                         WHERE key_id = $1 AND encml.same_role(grantee, $2::text::regrole) AND privilege = $3 RETURNING 1) \
             SELECT EXISTS (SELECT FROM d)",
            &[
                Uuid::from_bytes(*id).into(),
                crate::pg::roles::role_name(grantee).into(),
                privilege.into(),
            ],
        )
        .or_spi_failed("key catalog query failed")
        .unwrap_or(false)
    });
    invalidate();
    removed
}
