-- pg_encrypt_ml: the order-revealing types ore_int8, ore_float8 and ore_timestamptz.
-- One layout for all three (docs/formats.md); the comparison, output and header functions are
-- written once in Rust for ore_int8 and bound here to the other two types by C symbol.
-- Operators and the min/max aggregates live in pg_catalog (always searched) so that
-- `c BETWEEN encml.ore_encrypt(...) AND ...`, ORDER BY c and min(c) work whatever the caller's
-- search_path; they apply only to these types, so they shadow nothing.

-- ---- ore_int8 ----
CREATE TYPE ore_int8 (
    INPUT = ore_int8_in, OUTPUT = ore_int8_out, RECEIVE = ore_int8_recv, SEND = ore_int8_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = plain
);
CREATE CAST (ore_int8 AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS ore_int8) WITH FUNCTION ore_int8_from_bytea(bytea);
ALTER FUNCTION ore_int8_cmp(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_lt(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_le(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_eq(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_ne(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_ge(ore_int8, ore_int8) LEAKPROOF;
ALTER FUNCTION ore_int8_gt(ore_int8, ore_int8) LEAKPROOF;
CREATE OPERATOR pg_catalog.< (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_lt,
    COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_le,
    COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.= (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_eq,
    COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, MERGES
);
CREATE OPERATOR pg_catalog.<> (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_ne,
    COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.>= (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_ge,
    COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR pg_catalog.> (
    LEFTARG = ore_int8, RIGHTARG = ore_int8, FUNCTION = ore_int8_gt,
    COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR CLASS ore_int8_ops DEFAULT FOR TYPE ore_int8 USING btree AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=,
    OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 ore_int8_cmp(ore_int8, ore_int8),
    FUNCTION 2 ore_int8_sortsupport(internal);
CREATE AGGREGATE pg_catalog.min(ore_int8) (
    SFUNC = ore_int8_smaller, STYPE = ore_int8, COMBINEFUNC = ore_int8_smaller,
    SORTOP = OPERATOR(pg_catalog.<), PARALLEL = SAFE
);
CREATE AGGREGATE pg_catalog.max(ore_int8) (
    SFUNC = ore_int8_larger, STYPE = ore_int8, COMBINEFUNC = ore_int8_larger,
    SORTOP = OPERATOR(pg_catalog.>), PARALLEL = SAFE
);
COMMENT ON AGGREGATE pg_catalog.min(ore_int8) IS 'Smallest ore_int8 (plaintext order within one key version)';
COMMENT ON AGGREGATE pg_catalog.max(ore_int8) IS 'Largest ore_int8 (plaintext order within one key version)';
COMMENT ON TYPE ore_int8 IS
    'Order-revealing encryption of bigint (CLWW 2016): btree-indexable for ranges and ORDER BY; leaks order and the first differing bit. Text form is base64.';

-- ---- ore_float8 ----
CREATE FUNCTION ore_float8_out(ore_float8) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_out_wrapper';
CREATE FUNCTION ore_float8_send(ore_float8) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_send_wrapper';
CREATE TYPE ore_float8 (
    INPUT = ore_float8_in, OUTPUT = ore_float8_out, RECEIVE = ore_float8_recv, SEND = ore_float8_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = plain
);
CREATE CAST (ore_float8 AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS ore_float8) WITH FUNCTION ore_float8_from_bytea(bytea);
CREATE FUNCTION ore_float8_cmp(ore_float8, ore_float8) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_cmp_wrapper';
CREATE FUNCTION ore_float8_lt(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_lt_wrapper';
CREATE FUNCTION ore_float8_le(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_le_wrapper';
CREATE FUNCTION ore_float8_eq(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_eq_wrapper';
CREATE FUNCTION ore_float8_ne(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_ne_wrapper';
CREATE FUNCTION ore_float8_ge(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_ge_wrapper';
CREATE FUNCTION ore_float8_gt(ore_float8, ore_float8) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_gt_wrapper';
CREATE FUNCTION ore_float8_smaller(ore_float8, ore_float8) RETURNS ore_float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_smaller_wrapper';
CREATE FUNCTION ore_float8_larger(ore_float8, ore_float8) RETURNS ore_float8
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_larger_wrapper';
CREATE FUNCTION ore_float8_sortsupport(internal) RETURNS void
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_sortsupport_wrapper';
CREATE FUNCTION key_id(ore_float8) RETURNS uuid
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_key_id_wrapper';
CREATE FUNCTION key_version(ore_float8) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_key_version_wrapper';
ALTER FUNCTION ore_float8_cmp(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_lt(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_le(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_eq(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_ne(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_ge(ore_float8, ore_float8) LEAKPROOF;
ALTER FUNCTION ore_float8_gt(ore_float8, ore_float8) LEAKPROOF;
CREATE OPERATOR pg_catalog.< (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_lt,
    COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_le,
    COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.= (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_eq,
    COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, MERGES
);
CREATE OPERATOR pg_catalog.<> (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_ne,
    COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.>= (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_ge,
    COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR pg_catalog.> (
    LEFTARG = ore_float8, RIGHTARG = ore_float8, FUNCTION = ore_float8_gt,
    COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR CLASS ore_float8_ops DEFAULT FOR TYPE ore_float8 USING btree AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=,
    OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 ore_float8_cmp(ore_float8, ore_float8),
    FUNCTION 2 ore_float8_sortsupport(internal);
CREATE AGGREGATE pg_catalog.min(ore_float8) (
    SFUNC = ore_float8_smaller, STYPE = ore_float8, COMBINEFUNC = ore_float8_smaller,
    SORTOP = OPERATOR(pg_catalog.<), PARALLEL = SAFE
);
CREATE AGGREGATE pg_catalog.max(ore_float8) (
    SFUNC = ore_float8_larger, STYPE = ore_float8, COMBINEFUNC = ore_float8_larger,
    SORTOP = OPERATOR(pg_catalog.>), PARALLEL = SAFE
);
COMMENT ON AGGREGATE pg_catalog.min(ore_float8) IS 'Smallest ore_float8 (plaintext order within one key version)';
COMMENT ON AGGREGATE pg_catalog.max(ore_float8) IS 'Largest ore_float8 (plaintext order within one key version)';
COMMENT ON TYPE ore_float8 IS
    'Order-revealing encryption of double precision (CLWW 2016): btree-indexable for ranges and ORDER BY; leaks order and the first differing bit. Text form is base64.';

-- ---- ore_timestamptz ----
CREATE FUNCTION ore_timestamptz_out(ore_timestamptz) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_out_wrapper';
CREATE FUNCTION ore_timestamptz_send(ore_timestamptz) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_send_wrapper';
CREATE TYPE ore_timestamptz (
    INPUT = ore_timestamptz_in, OUTPUT = ore_timestamptz_out, RECEIVE = ore_timestamptz_recv, SEND = ore_timestamptz_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = plain
);
CREATE CAST (ore_timestamptz AS bytea) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (bytea AS ore_timestamptz) WITH FUNCTION ore_timestamptz_from_bytea(bytea);
CREATE FUNCTION ore_timestamptz_cmp(ore_timestamptz, ore_timestamptz) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_cmp_wrapper';
CREATE FUNCTION ore_timestamptz_lt(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_lt_wrapper';
CREATE FUNCTION ore_timestamptz_le(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_le_wrapper';
CREATE FUNCTION ore_timestamptz_eq(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_eq_wrapper';
CREATE FUNCTION ore_timestamptz_ne(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_ne_wrapper';
CREATE FUNCTION ore_timestamptz_ge(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_ge_wrapper';
CREATE FUNCTION ore_timestamptz_gt(ore_timestamptz, ore_timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_gt_wrapper';
CREATE FUNCTION ore_timestamptz_smaller(ore_timestamptz, ore_timestamptz) RETURNS ore_timestamptz
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_smaller_wrapper';
CREATE FUNCTION ore_timestamptz_larger(ore_timestamptz, ore_timestamptz) RETURNS ore_timestamptz
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_larger_wrapper';
CREATE FUNCTION ore_timestamptz_sortsupport(internal) RETURNS void
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_sortsupport_wrapper';
CREATE FUNCTION key_id(ore_timestamptz) RETURNS uuid
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_key_id_wrapper';
CREATE FUNCTION key_version(ore_timestamptz) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ore_int8_key_version_wrapper';
ALTER FUNCTION ore_timestamptz_cmp(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_lt(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_le(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_eq(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_ne(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_ge(ore_timestamptz, ore_timestamptz) LEAKPROOF;
ALTER FUNCTION ore_timestamptz_gt(ore_timestamptz, ore_timestamptz) LEAKPROOF;
CREATE OPERATOR pg_catalog.< (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_lt,
    COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_le,
    COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.= (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_eq,
    COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, MERGES
);
CREATE OPERATOR pg_catalog.<> (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_ne,
    COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.>= (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_ge,
    COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR pg_catalog.> (
    LEFTARG = ore_timestamptz, RIGHTARG = ore_timestamptz, FUNCTION = ore_timestamptz_gt,
    COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR CLASS ore_timestamptz_ops DEFAULT FOR TYPE ore_timestamptz USING btree AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=,
    OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 ore_timestamptz_cmp(ore_timestamptz, ore_timestamptz),
    FUNCTION 2 ore_timestamptz_sortsupport(internal);
CREATE AGGREGATE pg_catalog.min(ore_timestamptz) (
    SFUNC = ore_timestamptz_smaller, STYPE = ore_timestamptz, COMBINEFUNC = ore_timestamptz_smaller,
    SORTOP = OPERATOR(pg_catalog.<), PARALLEL = SAFE
);
CREATE AGGREGATE pg_catalog.max(ore_timestamptz) (
    SFUNC = ore_timestamptz_larger, STYPE = ore_timestamptz, COMBINEFUNC = ore_timestamptz_larger,
    SORTOP = OPERATOR(pg_catalog.>), PARALLEL = SAFE
);
COMMENT ON AGGREGATE pg_catalog.min(ore_timestamptz) IS 'Smallest ore_timestamptz (plaintext order within one key version)';
COMMENT ON AGGREGATE pg_catalog.max(ore_timestamptz) IS 'Largest ore_timestamptz (plaintext order within one key version)';
COMMENT ON TYPE ore_timestamptz IS
    'Order-revealing encryption of timestamptz (CLWW 2016): btree-indexable for ranges and ORDER BY; leaks order and the first differing bit. Text form is base64.';
