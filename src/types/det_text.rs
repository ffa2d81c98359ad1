//! `det_text`: a deterministic AES-SIV ciphertext (layout in docs/formats.md and
//! `encml_core::siv`). Equal plaintexts under one key version give equal bytes, so equality,
//! hashing and a (meaningless but consistent) byte order on the ciphertext are all Postgres needs
//! for btree and hash indexes, UNIQUE, hash and merge joins, GROUP BY and DISTINCT. Those
//! operators reuse Postgres's own bytea functions (LANGUAGE internal): no Rust runs per
//! comparison. I/O conventions: `types::ciphertext`.

use crate::pg::varlena::OwnedVarlena;
use crate::types::ciphertext::{self, ciphertext_type};
use encml_core::format::Kind;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;

ciphertext_type!(DetText, DetTextOut, "det_text", Kind::Deterministic);

extension_sql!(
    r#"
CREATE TYPE det_text;
"#,
    name = "det_text_shell",
    creates = [Type(DetText)],
);

#[pg_extern(immutable, strict, parallel_safe)]
fn det_text_in(input: &CStr) -> DetTextOut {
    DetTextOut(ciphertext::text_in(input, Kind::Deterministic))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn det_text_out(value: DetText<'_>) -> &'static CStr {
    ciphertext::text_out(value.0)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn det_text_recv(buf: pgrx::Internal) -> DetTextOut {
    DetTextOut(ciphertext::recv(buf, Kind::Deterministic))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn det_text_send(value: DetText<'_>) -> OwnedVarlena {
    OwnedVarlena::from_slice(value.0)
}

/// bytea -> det_text: for ciphertexts produced by client libraries.
#[pg_extern(immutable, strict, parallel_safe)]
fn det_text_from_bytea(value: crate::pg::varlena::ByteaBytes<'_>) -> DetTextOut {
    DetTextOut(ciphertext::validated(
        value.0,
        Kind::Deterministic,
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
    ))
}

extension_sql!(
    r#"
CREATE TYPE det_text (
    INPUT = det_text_in,
    OUTPUT = det_text_out,
    RECEIVE = det_text_recv,
    SEND = det_text_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    STORAGE = extended
);
COMMENT ON TYPE det_text IS
    'Deterministic AES-SIV ciphertext (equal plaintexts under one key version are equal): indexable, joinable, unique-able; leaks equality and frequency. Text form is base64.';

CREATE CAST (det_text AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS det_text) WITH FUNCTION det_text_from_bytea(bytea);

-- The operators live in pg_catalog, which is always searched, so that
-- `WHERE email = encml.det_encrypt(...)` works whatever the caller's search_path (they apply only
-- to det_text, which is ours, so they shadow nothing).
-- Comparison, hashing and sort support are Postgres's own bytea functions: a det_text is
-- compared as the bytes it is. The order is an arbitrary, consistent order of ciphertexts
-- (what btree indexes and merge joins need); it says nothing about the plaintexts' order.
CREATE FUNCTION det_text_eq(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteaeq';
CREATE FUNCTION det_text_ne(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteane';
CREATE FUNCTION det_text_lt(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'bytealt';
CREATE FUNCTION det_text_le(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteale';
CREATE FUNCTION det_text_gt(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteagt';
CREATE FUNCTION det_text_ge(det_text, det_text) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteage';
CREATE FUNCTION det_text_cmp(det_text, det_text) RETURNS integer
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'byteacmp';
CREATE FUNCTION det_text_sortsupport(internal) RETURNS void
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'bytea_sortsupport';
CREATE FUNCTION det_text_hash(det_text) RETURNS integer
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'hashvarlena';
CREATE FUNCTION det_text_hash_extended(det_text, bigint) RETURNS bigint
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'hashvarlenaextended';

CREATE OPERATOR pg_catalog.= (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_eq,
    COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>), RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR pg_catalog.<> (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_ne,
    COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=), RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.< (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_lt,
    COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=), RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_le,
    COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>), RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.> (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_gt,
    COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=), RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR pg_catalog.>= (
    LEFTARG = det_text, RIGHTARG = det_text, FUNCTION = det_text_ge,
    COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<), RESTRICT = scalargesel, JOIN = scalargejoinsel
);

CREATE OPERATOR CLASS det_text_ops DEFAULT FOR TYPE det_text USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 det_text_cmp(det_text, det_text),
    FUNCTION 2 det_text_sortsupport(internal),
    FUNCTION 4 btequalimage(oid);
CREATE OPERATOR CLASS det_text_hash_ops DEFAULT FOR TYPE det_text USING hash AS
    OPERATOR 1 =,
    FUNCTION 1 det_text_hash(det_text),
    FUNCTION 2 det_text_hash_extended(det_text, bigint);
"#,
    name = "det_text_type",
    requires = [
        "det_text_shell",
        det_text_in,
        det_text_out,
        det_text_recv,
        det_text_send,
        det_text_from_bytea
    ],
);
