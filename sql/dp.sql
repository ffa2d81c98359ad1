-- Differential-privacy aggregates (src/api/dp.rs). State `internal`; noise once, in the final
-- function, after the privacy charge is recorded. Each aggregate comes in three forms:
--   (…, epsilon)                                        Laplace
--   (…, epsilon, delta)                                 Gaussian when delta > 0
--   (…, epsilon, delta, privacy_unit, max_rows_per_unit) contributions bounded per unit

CREATE FUNCTION dp_f64_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_f64_combine';
CREATE FUNCTION dp_f64_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_f64_serialize';
CREATE FUNCTION dp_f64_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_f64_deserialize';
CREATE FUNCTION dp_i64_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_i64_combine';
CREATE FUNCTION dp_i64_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_i64_serialize';
CREATE FUNCTION dp_i64_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_i64_deserialize';
CREATE FUNCTION dp_count_final(internal) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_count_final';
CREATE FUNCTION dp_sum_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_sum_f64_final';
CREATE FUNCTION dp_sum_bigint_final(internal) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_sum_i64_final';
CREATE FUNCTION dp_avg_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_avg_final';
CREATE FUNCTION dp_count_trans(internal, anyelement, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_trans';
CREATE AGGREGATE dp_count(value anyelement, epsilon float8) (
    SFUNC = dp_count_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_count_trans(internal, anyelement, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_trans';
CREATE AGGREGATE dp_count(value anyelement, epsilon float8, delta float8) (
    SFUNC = dp_count_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_count_trans(internal, anyelement, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_trans';
CREATE AGGREGATE dp_count(value anyelement, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_count_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_count_rows_trans(internal, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8) (
    SFUNC = dp_count_rows_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_count_rows_trans(internal, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8, delta float8) (
    SFUNC = dp_count_rows_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_count_rows_trans(internal, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_count_rows_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(internal, float8, float8, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(internal, float8, float8, float8, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(internal, bigint, bigint, bigint, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8) (
    SFUNC = dp_sum_bigint_trans, STYPE = internal, FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(internal, bigint, bigint, bigint, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8, delta float8) (
    SFUNC = dp_sum_bigint_trans, STYPE = internal, FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(internal, bigint, bigint, bigint, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_sum_bigint_trans, STYPE = internal, FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_avg(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_avg_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_avg(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_avg_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_avg(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_avg_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);

-- Partition selection for GROUP BY (src/privacy/release.rs): a grouped Agg node releases its
-- groups only with one of these as a top-level HAVING condition.
CREATE FUNCTION dp_partition_final(internal) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_partition_final';
CREATE FUNCTION dp_partition_trans(internal, float8, float8) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_partition_trans';
CREATE AGGREGATE dp_partition(epsilon float8, delta float8) (
    SFUNC = dp_partition_trans, STYPE = internal, FINALFUNC = dp_partition_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_public_groups_trans(state boolean, key anyelement, public_keys anyarray) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(state, true) AND coalesce(key = ANY (public_keys), false) $$;
CREATE AGGREGATE dp_public_groups(key anyelement, public_keys anyarray) (
    SFUNC = dp_public_groups_trans, STYPE = boolean, COMBINEFUNC = booland_statefunc,
    PARALLEL = SAFE
);
