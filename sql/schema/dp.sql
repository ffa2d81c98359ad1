-- Differential-privacy aggregates (src/api/dp.rs; support functions in src/privacy/dp_aggregates.rs
-- and src/privacy/dp_state_aggregates.rs). Noise once, in the final function, after the privacy
-- charge is recorded. Each aggregate comes in three forms:
--   (…, epsilon)                                        Laplace
--   (…, epsilon, delta)                                 Gaussian when delta > 0
--   (…, epsilon, delta, privacy_unit, max_rows_per_unit) contributions bounded per unit
-- dp_count_rows, dp_sum and dp_avg without a privacy unit keep their state in `dp_state` (fixed
-- size, so that Citus combines per-shard states and parallel query copies it as bytes); dp_count
-- (polymorphic, which Citus's partial aggregation cannot type-check), the privacy-unit forms
-- and dp_partition keep an `internal` state.

CREATE TYPE dp_state;
CREATE FUNCTION dp_state_in(cstring) RETURNS dp_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_in';
CREATE FUNCTION dp_state_out(dp_state) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_out';
CREATE TYPE dp_state (
    INPUT = dp_state_in, OUTPUT = dp_state_out,
    INTERNALLENGTH = 96, ALIGNMENT = char, STORAGE = plain
);
COMMENT ON TYPE dp_state IS 'pg_encrypt_ml: exact partial state of a dp aggregate without privacy units (docs/formats.md); released only through the aggregate''s final function';
CREATE FUNCTION dp_f64_combine(dp_state, dp_state) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_f64_combine';
CREATE FUNCTION dp_i64_combine(dp_state, dp_state) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_i64_combine';
CREATE FUNCTION dp_count_final(dp_state) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_state_count_final';
CREATE FUNCTION dp_sum_final(dp_state) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_state_sum_f64_final';
CREATE FUNCTION dp_sum_bigint_final(dp_state) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_state_sum_i64_final';
CREATE FUNCTION dp_avg_final(dp_state) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_state_avg_final';

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
CREATE FUNCTION dp_count_rows_trans(dp_state, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8) (
    SFUNC = dp_count_rows_trans, STYPE = dp_state, INITCOND = 'dp1:i', FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_count_rows_trans(dp_state, float8, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8, delta float8) (
    SFUNC = dp_count_rows_trans, STYPE = dp_state, INITCOND = 'dp1:i', FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_count_rows_trans(internal, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_count_rows_trans';
CREATE AGGREGATE dp_count_rows(epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_count_rows_trans, STYPE = internal, FINALFUNC = dp_count_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(dp_state, float8, float8, float8, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_sum_trans, STYPE = dp_state, INITCOND = 'dp1:f', FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(dp_state, float8, float8, float8, float8, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_sum_trans, STYPE = dp_state, INITCOND = 'dp1:f', FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_f64_trans';
CREATE AGGREGATE dp_sum(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_sum_trans, STYPE = internal, FINALFUNC = dp_sum_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, SERIALFUNC = dp_f64_serialize, DESERIALFUNC = dp_f64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(dp_state, bigint, bigint, bigint, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8) (
    SFUNC = dp_sum_bigint_trans, STYPE = dp_state, INITCOND = 'dp1:i', FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(dp_state, bigint, bigint, bigint, float8, float8) RETURNS dp_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_state_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8, delta float8) (
    SFUNC = dp_sum_bigint_trans, STYPE = dp_state, INITCOND = 'dp1:i', FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, PARALLEL = SAFE
);
CREATE FUNCTION dp_sum_bigint_trans(internal, bigint, bigint, bigint, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_sum_i64_trans';
CREATE AGGREGATE dp_sum(value bigint, lower bigint, upper bigint, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_sum_bigint_trans, STYPE = internal, FINALFUNC = dp_sum_bigint_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_avg(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_sum_trans, STYPE = dp_state, INITCOND = 'dp1:f', FINALFUNC = dp_avg_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, PARALLEL = SAFE
);
CREATE AGGREGATE dp_avg(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_sum_trans, STYPE = dp_state, INITCOND = 'dp1:f', FINALFUNC = dp_avg_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_f64_combine, PARALLEL = SAFE
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
-- The privacy-unit form: counts each unit once per group; the planner hook bounds each unit's
-- rows to max_groups_contributed groups (src/privacy/groups_per_unit.rs).
CREATE FUNCTION dp_partition_trans(internal, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_partition_trans';
CREATE AGGREGATE dp_partition(epsilon float8, delta float8, privacy_unit text, max_groups_contributed integer) (
    SFUNC = dp_partition_trans, STYPE = internal, FINALFUNC = dp_partition_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_i64_combine, SERIALFUNC = dp_i64_serialize, DESERIALFUNC = dp_i64_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_public_groups_trans(state boolean, key anyelement, public_keys anyarray) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(state, true) AND coalesce(key OPERATOR(pg_catalog.=) ANY (public_keys), false) $$;
CREATE AGGREGATE dp_public_groups(key anyelement, public_keys anyarray) (
    SFUNC = dp_public_groups_trans, STYPE = boolean, COMBINEFUNC = booland_statefunc,
    PARALLEL = SAFE
);
-- Quantiles and variance (src/privacy/dp_bounded_aggregates.rs): an `internal` state, an exact
-- histogram over a 1024-point candidate grid or exact moments (docs/privacy.md).
CREATE FUNCTION dp_histogram_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_combine';
CREATE FUNCTION dp_histogram_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_serialize';
CREATE FUNCTION dp_histogram_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_deserialize';
CREATE FUNCTION dp_moments_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_combine';
CREATE FUNCTION dp_moments_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_serialize';
CREATE FUNCTION dp_moments_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_deserialize';
-- Their forms without a privacy unit keep an `encml.dp_summary` instead (a varlena type,
-- sealed in text), so that Citus aggregates them on the shards (src/privacy/dp_summary_aggregates.rs).
CREATE TYPE dp_summary;
CREATE FUNCTION dp_summary_in(cstring) RETURNS dp_summary
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_summary_in';
CREATE FUNCTION dp_summary_out(dp_summary) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_summary_out';
CREATE TYPE dp_summary (
    INPUT = dp_summary_in, OUTPUT = dp_summary_out,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE dp_summary IS 'pg_encrypt_ml: exact partial summary (histogram or moments) of a quantile or variance dp aggregate without privacy units; sealed in text (docs/formats.md); released only through the aggregate''s final function';
CREATE FUNCTION dp_histogram_summary_combine(dp_summary, dp_summary) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_summary_combine';
CREATE FUNCTION dp_moments_summary_combine(dp_summary, dp_summary) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_combine';
CREATE FUNCTION dp_percentile_summary_final(dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_final';
CREATE FUNCTION dp_percentiles_summary_final(dp_summary) RETURNS float8[]
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_final';
CREATE FUNCTION dp_var_pop_summary_final(dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_var_pop_summary_final';
CREATE FUNCTION dp_stddev_pop_summary_final(dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_stddev_pop_summary_final';
CREATE FUNCTION dp_percentile_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentile_final';
CREATE FUNCTION dp_percentiles_final(internal) RETURNS float8[]
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentiles_final';
CREATE FUNCTION dp_var_pop_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_var_pop_final';
CREATE FUNCTION dp_stddev_pop_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_stddev_pop_final';
CREATE FUNCTION dp_percentile_summary_trans(dp_summary, float8, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_trans';
CREATE AGGREGATE dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_percentile_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_percentile_summary_trans(dp_summary, float8, float8, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_trans';
CREATE AGGREGATE dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_percentile_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_percentile_trans(internal, float8, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_trans';
CREATE AGGREGATE dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_percentile_trans, STYPE = internal, FINALFUNC = dp_percentile_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_combine, SERIALFUNC = dp_histogram_serialize, DESERIALFUNC = dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_percentiles_summary_trans(dp_summary, float8, float8[], float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_trans';
CREATE AGGREGATE dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8) (
    SFUNC = dp_percentiles_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentiles_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_percentiles_summary_trans(dp_summary, float8, float8[], float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_trans';
CREATE AGGREGATE dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_percentiles_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentiles_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_percentiles_trans(internal, float8, float8[], float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_trans';
CREATE AGGREGATE dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_percentiles_trans, STYPE = internal, FINALFUNC = dp_percentiles_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_combine, SERIALFUNC = dp_histogram_serialize, DESERIALFUNC = dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_median_summary_trans(dp_summary, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_summary_trans';
CREATE AGGREGATE dp_median(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_median_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_median_summary_trans(dp_summary, float8, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_summary_trans';
CREATE AGGREGATE dp_median(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_median_summary_trans, STYPE = dp_summary, FINALFUNC = dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_median_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_trans';
CREATE AGGREGATE dp_median(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_median_trans, STYPE = internal, FINALFUNC = dp_percentile_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_histogram_combine, SERIALFUNC = dp_histogram_serialize, DESERIALFUNC = dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_moments_summary_trans(dp_summary, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_trans';
CREATE AGGREGATE dp_var_pop(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_moments_summary_trans, STYPE = dp_summary, FINALFUNC = dp_var_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_moments_summary_trans(dp_summary, float8, float8, float8, float8, float8) RETURNS dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_trans';
CREATE AGGREGATE dp_var_pop(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_moments_summary_trans, STYPE = dp_summary, FINALFUNC = dp_var_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION dp_moments_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_trans';
CREATE AGGREGATE dp_var_pop(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_moments_trans, STYPE = internal, FINALFUNC = dp_var_pop_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_combine, SERIALFUNC = dp_moments_serialize, DESERIALFUNC = dp_moments_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = dp_moments_summary_trans, STYPE = dp_summary, FINALFUNC = dp_stddev_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = dp_moments_summary_trans, STYPE = dp_summary, FINALFUNC = dp_stddev_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE AGGREGATE dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = dp_moments_trans, STYPE = internal, FINALFUNC = dp_stddev_pop_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = dp_moments_combine, SERIALFUNC = dp_moments_serialize, DESERIALFUNC = dp_moments_deserialize,
    PARALLEL = SAFE
);

-- The privacy budget of an analyst (src/api/privacy.rs): a C function of its own, under the
-- symbol 0.1.0's four-argument declaration also calls.
CREATE FUNCTION set_privacy_budget(analyst regrole, epsilon double precision,
        delta double precision DEFAULT 0, scope text DEFAULT 'default', accounting text DEFAULT 'approx')
    RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'set_privacy_budget_wrapper';
