//! Aggregation rounds: the decrypting party learns sums, never one client's update, and never
//! the sum of a subset it chose. Updates are submitted to an open round (contributors cannot read
//! them back); an admin closes the round, which sums its updates once, keeps only the sum and
//! refuses if fewer than `min_contributions` contributor roles sent one (a round takes one update
//! per role); the decryptor reads closed rounds' sums and
//! nothing else. Separation of duties: a role acting as decryptor may neither contribute nor run
//! rounds (it could otherwise fill a round with its own updates, or close one early), and a
//! ciphertext is accepted once per key set, so no update can be replayed into a second round.

use crate::events;
use crate::pg::catalog_reads::oid_arg;
use crate::pg::errors::OrSpiFailed;
use crate::pg::errors::{raise, raise_full};
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, FHE_ADMIN, FHE_CONTRIBUTOR,
    FHE_DECRYPTOR,
};
use crate::pg::varlena::OwnedVarlena;
use crate::types::fhe_vector::FheVectorOut;
use encml_fhe::params::Encoding;
use encml_fhe::proven;
use encml_fhe::vector::{Scheme, Serialized};
use encml_fhe::FheError;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, Uuid};
use serde_json::json;

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
        && if group == FHE_DECRYPTOR {
            has_privs_of_role_named(me, FHE_ADMIN) || has_privs_of_role_named(me, FHE_CONTRIBUTOR)
        } else {
            has_privs_of_role_named(me, FHE_DECRYPTOR)
        };
    if !member || conflict {
        events::refused(
            &format!("{operation}_refused"),
            json!({ "role": role_name(me) }),
        );
        let why = if member {
            format!("the decrypting role ({FHE_DECRYPTOR}) may not also contribute or run rounds")
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

/// Refuses (22023) a round's own decryptor that could not read its sum: a role without the
/// privileges of encml_fhe_decryptor, or one that also contributes or runs rounds.
fn require_decrypting_role(role: pg_sys::Oid) {
    let decrypts = has_privs_of_role_named(role, FHE_DECRYPTOR);
    let conflict =
        has_privs_of_role_named(role, FHE_ADMIN) || has_privs_of_role_named(role, FHE_CONTRIBUTOR);
    if !decrypts || conflict {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "role {} cannot be a round's decryptor: it must have the privileges of {FHE_DECRYPTOR} and neither contribute nor run rounds",
                role_name(role)
            ),
            None,
            Some(format!("GRANT {FHE_DECRYPTOR} TO the role that holds the secret key.")),
        );
    }
}

/// Opens a round for vectors of `dim` values; returns its id.
#[allow(clippy::too_many_arguments)] // fhe_open_round's SQL parameters, one for one
pub fn open(
    keyset: Uuid,
    dim: i32,
    min_contributions: i32,
    max_contributions: i32,
    value_bits: i32,
    frac_bits: i32,
    unproven: bool,
    decryptor: Option<pg_sys::Oid>,
) -> i64 {
    let me = require("fhe_open_round", FHE_ADMIN);
    if let Some(role) = decryptor {
        require_decrypting_role(role);
    }
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
    // The key set must exist and be a vector key set.
    crate::fhe::keysets::vector_public_key(keyset.as_bytes());
    let crs = crate::fhe::keysets::crs(keyset.as_bytes());
    let encoding = match (&crs, unproven) {
        // A proven key set's rounds use the CRS's encoding: the proofs fix the value and message
        // bits. Its noise and headroom are checked for max_contributions as for any round.
        (Some(crs), false) => {
            let (crs_value_bits, _) = crs.encoding_bits;
            if value_bits != crs_value_bits as i32 {
                raise_full(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "key set {keyset} proves values of {crs_value_bits} bits, not {value_bits}"
                    ),
                    None,
                    Some(format!(
                        "Open the round with value_bits => {crs_value_bits}."
                    )),
                );
            }
            let encoding = crs.encoding(frac_bits as u8);
            encoding.check(max_contributions as u64).map(|_| encoding)
        }
        (Some(_), true) => raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("key set {keyset} takes proven updates only"),
            Some(
                "One unproven round would let a contributor read the secret key from its sum, \
                 and with it every update of every round of the key set."
                    .into(),
            ),
            None,
        ),
        (None, false) => raise_full(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("key set {keyset} has no CRS: its updates cannot be proven"),
            Some(
                "Without proofs any contributor can upload a chosen ciphertext that puts bits of \
                 the secret key into the round's sum (docs/fhe.md, \"Proven updates\")."
                    .into(),
            ),
            Some(
                "Register a key set made with pg_encrypt_ml-fhe keygen --proofs, or pass \
                 unproven => true if every contributor is trusted with the secret key."
                    .into(),
            ),
        ),
        (None, true) => {
            Encoding::for_sums(value_bits as u8, frac_bits as u8, max_contributions as u64)
        }
    }
    .unwrap_or_else(|e| {
        raise_full(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.to_string(),
            None,
            Some(
                "Use fewer value bits or a smaller max_contributions (docs/fhe.md has the table)."
                    .into(),
            ),
        )
    });
    let proven = crs.is_some();
    // (A 0.1.0 schema, before ALTER EXTENSION UPDATE, has no `proven` column: its rounds are
    // unproven; $9 is then passed and not used.)
    let (column, value) = if crate::fhe::keysets::proofs_supported() {
        (", proven, decryptor", ", $9, $10::regrole")
    } else {
        if decryptor.is_some() {
            raise_full(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a round's own decryptor needs the 0.2.0 schema",
                None,
                Some("Run ALTER EXTENSION pg_encrypt_ml UPDATE.".into()),
            );
        }
        ("", "")
    };
    let insert = format!(
        "INSERT INTO encml.fhe_rounds (keyset, dim, value_bits, frac_bits, message_bits, \
           min_contributions, max_contributions, opened_by{column}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::regrole{value}) RETURNING id"
    );
    let id = crate::pg::identity::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                &insert,
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
                    proven.into(),
                    decryptor.into(),
                ],
            )
            .or_spi_failed("FHE round catalog")
            .first()
            .get_one::<i64>()
            .or_spi_failed("FHE round catalog")
            .expect("a round id")
        })
    });
    events::record(
        "fhe_open_round",
        None,
        json!({ "round": id, "keyset": keyset.to_string(), "dim": dim,
                "min_contributions": min_contributions, "max_contributions": max_contributions,
                "proven": proven, "decryptor": decryptor.map(role_name) }),
    );
    id
}

/// The round's row, locked until the end of the transaction: `FOR NO KEY UPDATE` while
/// submitting (submissions to one round take turns, so the count never passes
/// max_contributions, which bounds the noise), `FOR UPDATE` while closing (waits for
/// submissions in flight; later ones see the round closed).
pub(crate) struct Round {
    pub keyset: Uuid,
    pub dim: i32,
    pub encoding: Encoding,
    min: i32,
    max: i32,
    /// Updates submitted (after a close: summed).
    pub count: i32,
    open: bool,
    /// Takes proven updates only (its key set has a CRS).
    pub proven: bool,
}

/// The round's row, locked in `mode` (`None`: read without a lock; a round's parameters never
/// change after it opens, only its count and status).
fn lock_round(c: &mut pgrx::spi::SpiClient<'_>, round: i64, mode: Option<&str>) -> Round {
    let lock = mode.map(|m| format!("FOR {m}")).unwrap_or_default();
    let proven = if crate::fhe::keysets::proofs_supported() {
        "proven"
    } else {
        "false" // a 0.1.0 schema
    };
    let rows = c
        .update(
            &format!(
                "SELECT keyset, dim, value_bits, frac_bits, message_bits, min_contributions, \
                        max_contributions, contributions, status = 'open', {proven} \
                   FROM encml.fhe_rounds WHERE id = $1 {lock}"
            ),
            Some(1),
            &[round.into()],
        )
        .or_spi_failed("FHE round catalog");
    let Some(row) = rows.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("FHE round {round} does not exist"),
        );
    };
    let get_i16 = |n: usize| {
        row.get::<i16>(n)
            .or_spi_failed("FHE round catalog")
            .unwrap_or(0) as u8
    };
    Round {
        keyset: row
            .get::<Uuid>(1)
            .or_spi_failed("FHE round catalog")
            .expect("keyset"),
        dim: row
            .get::<i32>(2)
            .or_spi_failed("FHE round catalog")
            .expect("dim"),
        encoding: Encoding {
            value_bits: get_i16(3),
            frac_bits: get_i16(4),
            message_bits: get_i16(5),
        },
        min: row
            .get::<i32>(6)
            .or_spi_failed("FHE round catalog")
            .expect("min"),
        max: row
            .get::<i32>(7)
            .or_spi_failed("FHE round catalog")
            .expect("max"),
        count: row
            .get::<i32>(8)
            .or_spi_failed("FHE round catalog")
            .expect("count"),
        open: row
            .get::<bool>(9)
            .or_spi_failed("FHE round catalog")
            .expect("status"),
        proven: row
            .get::<bool>(10)
            .or_spi_failed("FHE round catalog")
            .expect("proven"),
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

/// Refuses an update (a missing, invalid or replayed proof, or a ciphertext that does not fit
/// the round), leaving a security event that outlives the ERROR; nothing of the update is kept.
fn refuse_update(round: i64, reason: &str, e: FheError) -> ! {
    events::refused(
        "fhe_submit_refused",
        json!({ "round": round, "reason": reason, "error": e.to_string() }),
    );
    crate::pg::errors::fhe_error(e)
}

/// The update a proven round stores: the proven update's ciphertexts once every proof verified
/// (as an encrypted vector, signed encoding), or a refusal. Runs before the round is locked:
/// verifying takes about 0.1 s per 2,048 values, and other submissions go on meanwhile.
fn verified(round: i64, r: &Round, bytes: &[u8]) -> Vec<u8> {
    if !proven::is_proven_update(bytes) {
        refuse_update(
            round,
            "missing proof",
            FheError::Invalid(format!(
                "FHE round {round} takes proven updates only (pg_encrypt_ml-fhe encrypt --crs \
                 crs.bin --round {round}, submitted with encml.fhe_submit_proven)"
            )),
        );
    }
    let key = crate::fhe::keysets::vector_public_key(r.keyset.as_bytes());
    let Some(crs) = crate::fhe::keysets::crs(r.keyset.as_bytes()) else {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("FHE round {round} is proven but its key set has no CRS"),
        );
    };
    let pending = proven::Pending::new(bytes, &key, &crs, round).unwrap_or_else(|e| {
        let reason = match e {
            FheError::Malformed(_) => "malformed update",
            FheError::Invalid(_) => "proof for another round",
            _ => "update does not fit the round",
        };
        refuse_update(round, reason, e)
    });
    let h = pending.header();
    if h.dim as i64 != r.dim as i64 || h.encoding != r.encoding {
        refuse_update(
            round,
            "update does not fit the round",
            FheError::Mismatch(format!(
                "update does not fit round {round}: {} values at {}/{}/{} (value/fractional/message \
                 bits), the round takes {} at {}/{}/{}",
                h.dim, h.encoding.value_bits, h.encoding.frac_bits, h.encoding.message_bits,
                r.dim, r.encoding.value_bits, r.encoding.frac_bits, r.encoding.message_bits
            )),
        );
    }
    for c in 0..pending.chunks() {
        pg_sys::check_for_interrupts!();
        crate::fhe::workers::run(|| pending.verify_chunk(c))
            .unwrap_or_else(|e| refuse_update(round, "proof does not verify", e));
    }
    pending.accept().to_bytes()
}

/// Adds one client's update to an open round; returns how many the round now has. A proven
/// round takes proven updates (`pg_encrypt_ml-fhe encrypt --crs`) and stores them once every
/// proof verified; a round opened with `unproven => true` takes encrypted vectors.
pub fn submit(round: i64, update: &[u8]) -> i32 {
    let me = party(require("fhe_submit", FHE_CONTRIBUTOR));
    let unlocked = crate::pg::identity::as_extension_owner(|| {
        Spi::connect_mut(|c| lock_round(c, round, None))
    });
    if !unlocked.open {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("FHE round {round} is closed"),
        );
    }
    let stored = if unlocked.proven {
        verified(round, &unlocked, update)
    } else if proven::is_proven_update(update) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "FHE round {round} takes encrypted vectors without proofs (its key set has no CRS)"
            ),
        )
    } else {
        update.to_vec()
    };
    let v = Serialized::parse(&stored).unwrap_or_else(|e| crate::pg::errors::fhe_error(e));
    if !unlocked.proven && v.scheme != Scheme::Difference {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("update does not fit round {round}: it is a single encryption without proofs"),
        );
    }
    let (key_id, dim, terms, encoding, fp) =
        (v.key_id, v.dim, v.terms, v.encoding, v.fingerprint());
    let update = stored.as_slice();
    let count = crate::pg::identity::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let r = lock_round(c, round, Some("NO KEY UPDATE"));
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
                .or_spi_failed("FHE round catalog")
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
                .or_spi_failed("FHE round catalog")
                .len();
            if inserted == 0 {
                events::refused(
                    "fhe_submit_refused",
                    json!({ "round": round, "reason": "replayed update" }),
                );
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
            .or_spi_failed("FHE round catalog")
            .first()
            .get_one::<i32>()
            .or_spi_failed("FHE round catalog")
            .expect("count")
        })
    });
    count
}

/// Closes a round: sums its updates once, keeps the sum, discards the updates. Refuses (and
/// releases nothing) while fewer than `min_contributions` arrived. With `dp` (epsilon, delta),
/// adds discrete Gaussian noise to the encrypted sum (`dp_noise`) and records what each read of
/// it will be charged. Returns the number summed.
pub fn close(round: i64, dp: Option<(f64, f64)>) -> i32 {
    require("fhe_close_round", FHE_ADMIN);
    if dp.is_some() && !crate::fhe::keysets::proofs_supported() {
        raise_full(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "differentially private round sums need the 0.2.0 schema",
            None,
            Some("Run ALTER EXTENSION pg_encrypt_ml UPDATE.".into()),
        );
    }
    let (n, sigma) = crate::pg::identity::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let r = lock_round(c, round, Some("UPDATE"));
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
                .or_spi_failed("FHE round catalog")
                .first()
                .get_one::<i32>()
                .or_spi_failed("FHE round catalog")
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
            // Calibrated and checked before anything changes.
            let noise =
                dp.map(|(epsilon, delta)| crate::fhe::dp_noise::plan(round, &r, epsilon, delta));
            let dp_record = noise
                .as_ref()
                .map(|n| (n.epsilon, n.delta, n.sigma_values(&r.encoding)));
            match &noise {
                None => {
                    c.update(
                        "UPDATE encml.fhe_rounds SET status = 'closed', closed_at = now(), \
                                total = (SELECT encml.fhe_vector_sum(update) FROM encml.fhe_contributions \
                                          WHERE round = $1) \
                          WHERE id = $1",
                        None,
                        &[round.into()],
                    )
                    .or_spi_failed("FHE round catalog");
                }
                // The exact sum is only read, never stored: a row version holding it would stay
                // in the table's pages and the WAL (and so in backups) after the noisy sum
                // replaced it, and with the secret key it is the sum without its noise.
                Some(noise) => {
                    let exact = c
                        .select(
                            "SELECT encml.fhe_vector_sum(update)::bytea FROM encml.fhe_contributions \
                              WHERE round = $1",
                            None,
                            &[round.into()],
                        )
                        .or_spi_failed("FHE round catalog")
                        .first()
                        .get_one::<Vec<u8>>()
                        .or_spi_failed("FHE round catalog")
                        .expect("the round's sum");
                    let (epsilon, delta, sigma) = dp_record.expect("a DP close has its record");
                    c.update(
                        "UPDATE encml.fhe_rounds SET status = 'closed', closed_at = now(), \
                                total = $2::encml.fhe_vector, dp_epsilon = $3, dp_delta = $4, \
                                dp_sigma = $5 \
                          WHERE id = $1",
                        None,
                        &[
                            round.into(),
                            noise.add_to(&r, &exact).into(),
                            epsilon.into(),
                            delta.into(),
                            sigma.into(),
                        ],
                    )
                    .or_spi_failed("FHE round catalog");
                }
            }
            crate::pg::pause::point("fhe_close_round");
            c.update(
                "UPDATE encml.fhe_contributions SET update = NULL WHERE round = $1",
                None,
                &[round.into()],
            )
            .or_spi_failed("FHE round catalog");
            (r.count, dp_record)
        })
    });
    let mut detail = json!({ "round": round, "contributions": n });
    if let Some((epsilon, delta, sigma)) = sigma {
        detail["dp"] = json!({ "epsilon": epsilon, "delta": delta, "sigma": sigma });
    }
    events::record("fhe_close_round", None, detail);
    n
}

/// The sum of a closed round: the decrypting role's only access to round data. A round opened
/// with its own decryptor releases it to that role only; a differentially private sum charges
/// the reader's privacy budget at each read, before the sum is read, outside the transaction
/// (a refusal releases nothing and stays recorded).
pub fn sum(round: i64) -> FheVectorOut {
    let me = require("fhe_round_sum", FHE_DECRYPTOR);
    let v2 = crate::fhe::keysets::proofs_supported();
    let columns = if v2 {
        "decryptor::oid, dp_epsilon, dp_delta"
    } else {
        "NULL::oid, NULL::float8, NULL::float8" // a 0.1.0 schema
    };
    let meta = crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::read_rows(
            &format!("SELECT status = 'closed', {columns} FROM encml.fhe_rounds WHERE id = $1"),
            &[crate::pg::catalog_reads::arg(round)],
            1,
            |row| {
                (
                    row.get::<bool>(1).unwrap_or(false),
                    row.get::<pg_sys::Oid>(2),
                    row.get::<f64>(3),
                    row.get::<f64>(4),
                )
            },
        )
    });
    let Some((closed, decryptor, epsilon, delta)) = meta.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("FHE round {round} does not exist"),
        );
    };
    if let Some(role) = decryptor {
        // SAFETY: two role oids looked up in the catalog (a role dropped meanwhile has no
        // privileges), inside this SQL function's transaction; guarded by pgrx's wrapper.
        if !is_superuser(me) && !unsafe { pg_sys::has_privs_of_role(me, role) } {
            events::refused(
                "fhe_round_sum_refused",
                json!({ "role": role_name(me), "round": round }),
            );
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied for fhe_round_sum: round {round} releases its sum to role {} only",
                    role_name(role)
                ),
            );
        }
    }
    if !closed {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("FHE round {round} is not closed; its sum is not released"),
        );
    }
    if let (Some(epsilon), Some(delta)) = (epsilon, delta) {
        crate::privacy::charge::charge(epsilon, delta);
    }
    let total = crate::pg::identity::as_extension_owner(|| {
        crate::pg::catalog_reads::select_one::<Vec<u8>>(
            "SELECT total::bytea FROM encml.fhe_rounds WHERE id = $1",
            &[crate::pg::catalog_reads::arg(round)],
        )
    })
    .expect("a closed round has a sum");
    events::record(
        "fhe_round_sum",
        None,
        json!({ "round": round, "dp": epsilon.map(|e| json!({ "epsilon": e, "delta": delta })) }),
    );
    FheVectorOut(OwnedVarlena::from_slice(&total))
}
