//! Aggregation rounds: the decrypting party learns sums, never one client's update, and never
//! the sum of a subset it chose. Updates are submitted to an open round (contributors cannot read
//! them back); an admin closes the round, which sums its updates once, keeps only the sum and
//! refuses if fewer than `min_contributions` contributor roles sent one (a round takes one update
//! per role); the decryptor reads closed rounds' sums and
//! nothing else. Separation of duties: a role acting as decryptor may neither contribute nor run
//! rounds (it could otherwise fill a round with its own updates, or close one early), and a
//! ciphertext is accepted once per key set, so no update can be replayed into a second round.

use crate::audit::events;
use crate::pg::catalog_access::{
    caller, has_privs_of_role_named, is_superuser, oid_arg, role_name,
};
use crate::pg::errors::{raise, raise_full};
use crate::types::fhe_vector::FheVectorOut;
use crate::types::varlena::OwnedVarlena;
use encml_fhe::params::Encoding;
use encml_fhe::vector::Serialized;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

pub const ADMIN_ROLE: &str = "encml_fhe_admin";
pub const CONTRIBUTOR_ROLE: &str = "encml_fhe_contributor";
pub const DECRYPTOR_ROLE: &str = "encml_fhe_decryptor";

/// The smallest round the extension accepts: below two, a sum is one client's update.
pub const MIN_CONTRIBUTIONS_FLOOR: i32 = 2;

/// Refuses (and logs the refusal) unless the caller acts as `group`. Separation of duties: a
/// role with the decryptor's privileges may neither contribute nor run rounds, and the other
/// way round (superusers excepted: they can do anything anyway).
pub(crate) fn require(operation: &str, group: &str) -> pg_sys::Oid {
    let me = caller();
    let superuser = is_superuser(me);
    let member = superuser || has_privs_of_role_named(me, group);
    let conflict = !superuser
        && if group == DECRYPTOR_ROLE {
            has_privs_of_role_named(me, ADMIN_ROLE) || has_privs_of_role_named(me, CONTRIBUTOR_ROLE)
        } else {
            has_privs_of_role_named(me, DECRYPTOR_ROLE)
        };
    if !member || conflict {
        events::refused(
            &format!("{operation}_refused"),
            json!({ "role": role_name(me) }),
        );
        let why = if member {
            format!("the decrypting role ({DECRYPTOR_ROLE}) may not also contribute or run rounds")
        } else {
            format!("needs {group}")
        };
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for {operation}: {why}"),
        );
    }
    me
}

pub(crate) fn spi_err(e: pgrx::spi::SpiError) -> ! {
    crate::pg::errors::spi_failed("FHE round catalog", e)
}

/// Opens a round for vectors of `dim` values; returns its id.
pub fn open(
    keyset: Uuid,
    dim: i32,
    min_contributions: i32,
    max_contributions: i32,
    value_bits: i32,
    frac_bits: i32,
) -> i64 {
    let me = require("fhe_open_round", ADMIN_ROLE);
    if dim <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "dim must be positive",
        );
    }
    if min_contributions < MIN_CONTRIBUTIONS_FLOOR || max_contributions < min_contributions {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "need {MIN_CONTRIBUTIONS_FLOOR} <= min_contributions <= max_contributions \
                 (a sum of one update is that update)"
            ),
        );
    }
    if !(1..=60).contains(&value_bits) || !(0..value_bits).contains(&frac_bits) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "value_bits must be in 1..60 and frac_bits in 0..value_bits",
        );
    }
    let encoding = Encoding::for_sums(value_bits as u8, frac_bits as u8, max_contributions as u64)
        .unwrap_or_else(|e| {
            raise_full(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                e.to_string(),
                None,
                Some("Use fewer value bits or a smaller max_contributions (docs/fhe.md has the table).".into()),
            )
        });
    // The key set must exist and be a vector key set.
    crate::fhe::keysets::vector_public_key(keyset.as_bytes());
    let id = crate::pg::catalog_access::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO encml.fhe_rounds (keyset, dim, value_bits, frac_bits, message_bits, \
                   min_contributions, max_contributions, opened_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::regrole) RETURNING id",
                None,
                &[
                    keyset.into(),
                    dim.into(),
                    (value_bits as i16).into(),
                    (frac_bits as i16).into(),
                    (encoding.message_bits as i16).into(),
                    min_contributions.into(),
                    max_contributions.into(),
                    oid_arg(me),
                ],
            )
            .unwrap_or_else(|e| spi_err(e))
            .first()
            .get_one::<i64>()
            .unwrap_or_else(|e| spi_err(e))
            .expect("a round id")
        })
    });
    events::record(
        "fhe_open_round",
        None,
        json!({ "round": id, "keyset": keyset.to_string(), "dim": dim,
                "min_contributions": min_contributions, "max_contributions": max_contributions }),
    );
    id
}

/// The round's row, locked until the end of the transaction: `FOR NO KEY UPDATE` while
/// submitting (submissions to one round take turns, so the count never passes
/// max_contributions, which bounds the noise), `FOR UPDATE` while closing (waits for
/// submissions in flight; later ones see the round closed).
struct Round {
    keyset: Uuid,
    dim: i32,
    encoding: Encoding,
    min: i32,
    max: i32,
    count: i32,
    open: bool,
}

fn lock_round(c: &mut pgrx::spi::SpiClient<'_>, round: i64, mode: &str) -> Round {
    let rows = c
        .update(
            &format!(
                "SELECT keyset, dim, value_bits, frac_bits, message_bits, min_contributions, \
                        max_contributions, contributions, status = 'open' \
                   FROM encml.fhe_rounds WHERE id = $1 FOR {mode}"
            ),
            Some(1),
            &[round.into()],
        )
        .unwrap_or_else(|e| spi_err(e));
    let Some(row) = rows.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("FHE round {round} does not exist"),
        );
    };
    let get_i16 = |n: usize| {
        row.get::<i16>(n)
            .unwrap_or_else(|e| spi_err(e))
            .unwrap_or(0) as u8
    };
    Round {
        keyset: row
            .get::<Uuid>(1)
            .unwrap_or_else(|e| spi_err(e))
            .expect("keyset"),
        dim: row
            .get::<i32>(2)
            .unwrap_or_else(|e| spi_err(e))
            .expect("dim"),
        encoding: Encoding {
            value_bits: get_i16(3),
            frac_bits: get_i16(4),
            message_bits: get_i16(5),
        },
        min: row
            .get::<i32>(6)
            .unwrap_or_else(|e| spi_err(e))
            .expect("min"),
        max: row
            .get::<i32>(7)
            .unwrap_or_else(|e| spi_err(e))
            .expect("max"),
        count: row
            .get::<i32>(8)
            .unwrap_or_else(|e| spi_err(e))
            .expect("count"),
        open: row
            .get::<bool>(9)
            .unwrap_or_else(|e| spi_err(e))
            .expect("status"),
    }
}

/// The party an update counts for: the session's login role, which SET ROLE cannot change
/// (every contributor may SET ROLE to encml_fhe_contributor itself, and to any other role it
/// belongs to, and counted as each it was several parties: attacker round 1 of issue 27). In a
/// superuser's session the current role (superusers can do anything anyway; tests act as many
/// contributors from one session).
fn party(me: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: reads the session's authenticated user id; cannot fail.
    let session = unsafe { pg_sys::GetSessionUserId() };
    if is_superuser(session) {
        me
    } else {
        session
    }
}

/// Adds one client's update to an open round; returns how many the round now has.
pub fn submit(round: i64, update: &[u8]) -> i32 {
    let me = party(require("fhe_submit", CONTRIBUTOR_ROLE));
    let v = Serialized::parse(update).unwrap_or_else(|e| crate::fhe::fhe_error(e));
    let (key_id, dim, terms, encoding, fp) =
        (v.key_id, v.dim, v.terms, v.encoding, v.fingerprint());
    let count = crate::pg::catalog_access::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let r = lock_round(c, round, "NO KEY UPDATE");
            let mismatch = |what: String| -> ! {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("update does not fit round {round}: {what}"),
                )
            };
            if !r.open {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("FHE round {round} is closed"),
                );
            }
            if Uuid::from_bytes(key_id) != r.keyset {
                mismatch(format!(
                    "it is under key set {}, the round uses {}",
                    Uuid::from_bytes(key_id),
                    r.keyset
                ));
            }
            if dim as i64 != r.dim as i64 {
                mismatch(format!("it has {dim} values, the round expects {}", r.dim));
            }
            if encoding != r.encoding {
                mismatch(format!(
                    "its encoding is {}/{}/{} (value/fractional/message bits), the round uses {}/{}/{}",
                    encoding.value_bits, encoding.frac_bits, encoding.message_bits,
                    r.encoding.value_bits, r.encoding.frac_bits, r.encoding.message_bits
                ));
            }
            if terms != 1 {
                mismatch("it is a sum, not one encrypted update".into());
            }
            if r.count >= r.max {
                raise(
                    PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "FHE round {round} is full ({} updates; its noise budget allows no more)",
                        r.max
                    ),
                );
            }
            // One update per contributor role and round: min_contributions counts parties, so
            // one role cannot fill a round with zeros around a single victim's update.
            let already = !c
                .select(
                    "SELECT FROM encml.fhe_contributions WHERE round = $1 AND contributor = $2::regrole",
                    Some(1),
                    &[round.into(), oid_arg(me)],
                )
                .unwrap_or_else(|e| spi_err(e))
                .is_empty();
            if already {
                events::refused(
                    "fhe_submit_refused",
                    json!({ "round": round, "reason": "second update from one contributor" }),
                );
                raise_full(
                    PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
                    format!(
                        "role \"{}\" already contributed to FHE round {round}",
                        role_name(me)
                    ),
                    Some("A round accepts one update per contributor role.".into()),
                    None,
                );
            }
            let inserted = c
                .update(
                    "INSERT INTO encml.fhe_contributions (round, keyset, fingerprint, contributor, update) \
                     VALUES ($1, $2, $3, $4::regrole, $5::bytea::encml.fhe_vector) \
                     ON CONFLICT (keyset, fingerprint) DO NOTHING RETURNING 1",
                    None,
                    &[round.into(), r.keyset.into(), fp.as_slice().into(), oid_arg(me), update.into()],
                )
                .unwrap_or_else(|e| spi_err(e))
                .len();
            if inserted == 0 {
                raise(
                    PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
                    "this encrypted update was already submitted (a ciphertext counts once per key set)",
                );
            }
            c.update(
                "UPDATE encml.fhe_rounds SET contributions = contributions + 1 WHERE id = $1 \
                 RETURNING contributions",
                None,
                &[round.into()],
            )
            .unwrap_or_else(|e| spi_err(e))
            .first()
            .get_one::<i32>()
            .unwrap_or_else(|e| spi_err(e))
            .expect("count")
        })
    });
    count
}

/// Closes a round: sums its updates once, keeps the sum, discards the updates. Refuses (and
/// releases nothing) while fewer than `min_contributions` arrived. Returns the number summed.
pub fn close(round: i64) -> i32 {
    require("fhe_close_round", ADMIN_ROLE);
    let n = crate::pg::catalog_access::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let r = lock_round(c, round, "UPDATE");
            if !r.open {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("FHE round {round} is already closed"),
                );
            }
            // Distinct roles, not rows: rounds opened before 0.2.0 accepted several updates
            // from one role.
            let parties = c
                .select(
                    "SELECT count(DISTINCT contributor)::int4 FROM encml.fhe_contributions WHERE round = $1",
                    None,
                    &[round.into()],
                )
                .unwrap_or_else(|e| spi_err(e))
                .first()
                .get_one::<i32>()
                .unwrap_or_else(|e| spi_err(e))
                .unwrap_or(0);
            if parties < r.min {
                raise_full(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "FHE round {round} has updates from {parties} of the {} contributor roles it needs; nothing is released",
                        r.min
                    ),
                    None,
                    Some("Wait for more contributions; the round stays open.".into()),
                );
            }
            c.update(
                "UPDATE encml.fhe_rounds SET status = 'closed', closed_at = now(), \
                        total = (SELECT encml.fhe_vector_sum(update) FROM encml.fhe_contributions \
                                  WHERE round = $1) \
                  WHERE id = $1",
                None,
                &[round.into()],
            )
            .unwrap_or_else(|e| spi_err(e));
            c.update(
                "UPDATE encml.fhe_contributions SET update = NULL WHERE round = $1",
                None,
                &[round.into()],
            )
            .unwrap_or_else(|e| spi_err(e));
            r.count
        })
    });
    events::record(
        "fhe_close_round",
        None,
        json!({ "round": round, "contributions": n }),
    );
    n
}

/// The sum of a closed round: the decrypting role's only access to round data.
pub fn sum(round: i64) -> FheVectorOut {
    require("fhe_round_sum", DECRYPTOR_ROLE);
    let total = crate::pg::catalog_access::as_extension_owner(|| {
        crate::pg::catalog_access::read_rows(
            "SELECT status = 'closed', total::bytea FROM encml.fhe_rounds WHERE id = $1",
            &[crate::pg::catalog_access::arg(round)],
            1,
            |row| (row.get::<bool>(1), row.get::<Vec<u8>>(2)),
        )
    });
    match total.into_iter().next() {
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("FHE round {round} does not exist"),
        ),
        Some((Some(true), Some(bytes))) => {
            events::record("fhe_round_sum", None, json!({ "round": round }));
            FheVectorOut(OwnedVarlena::from_slice(&bytes))
        }
        Some(_) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("FHE round {round} is not closed; its sum is not released"),
        ),
    }
}
