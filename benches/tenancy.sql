-- Benchmark of tenant isolation: a table under encml.enable_tenant_isolation (RLS forced, policy
-- tenant_id = encml.current_tenant()) against a twin with RLS off queried with a literal
-- tenant_id filter. :trows rows across 100 tenants, primary key (tenant_id, id) on both.
-- Batches of each query kind run in rotating order, round after round; the table shows the
-- median batch time of each kind.
\set QUIET on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE params AS
SELECT :trows::bigint AS trows, :tlookups::int AS lookups, :tscans::int AS scans, :runs::int AS runs;
GRANT SELECT ON params TO PUBLIC;
\o /dev/null
DROP TABLE IF EXISTS docs_isolated, docs_plain;
DROP ROLE IF EXISTS encml_bench_app;
CREATE ROLE encml_bench_app NOLOGIN;
SELECT count(encml.create_tenant('t' || i)) FROM generate_series(1, 100) i;
SELECT count(encml.grant_tenant('t' || i, 'encml_bench_app')) FROM generate_series(1, 100) i;

CREATE TABLE docs_isolated (tenant_id text NOT NULL, id bigint NOT NULL, body text NOT NULL,
                            PRIMARY KEY (tenant_id, id));
CREATE TABLE docs_plain (LIKE docs_isolated INCLUDING ALL);
INSERT INTO docs_isolated
SELECT 't' || (i % 100 + 1), i, md5(i::text) FROM generate_series(1, :trows::bigint) i;
INSERT INTO docs_plain SELECT * FROM docs_isolated;
SELECT encml.enable_tenant_isolation('docs_isolated');
GRANT SELECT ON docs_isolated, docs_plain TO encml_bench_app;
VACUUM ANALYZE docs_isolated;
VACUUM ANALYZE docs_plain;
CREATE TEMP TABLE tresults (ord int, name text, isolated_ms float8, plain_ms float8);
GRANT ALL ON tresults TO PUBLIC;

-- One batch of one kind of query, timed. Static SQL keeps its plan cached across calls (as a
-- prepared statement does); EXECUTE plans every time (as the simple query protocol does).
CREATE FUNCTION pg_temp.batch(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE p params := (SELECT params FROM params); t0 timestamptz := clock_timestamp();
        per_tenant bigint := p.trows / 100; b text; n bigint; k bigint;
BEGIN
    FOR i IN 1 .. CASE WHEN kind >= 5 THEN p.scans ELSE p.lookups END LOOP
        k := 41 + 100 * ((i * 7919) % per_tenant);       -- tenant t42 holds ids 41, 141, ...
        CASE kind
        WHEN 1 THEN SELECT body INTO b FROM docs_isolated WHERE id = k;
        WHEN 2 THEN SELECT body INTO b FROM docs_plain WHERE tenant_id = 't42' AND id = k;
        WHEN 3 THEN EXECUTE 'SELECT body FROM docs_isolated WHERE id = $1' INTO b USING k;
        WHEN 4 THEN EXECUTE 'SELECT body FROM docs_plain WHERE tenant_id = ''t42'' AND id = $1' INTO b USING k;
        WHEN 5 THEN EXECUTE 'SELECT count(*) FROM docs_isolated WHERE body <> ''''' INTO n;
        ELSE        EXECUTE 'SELECT count(*) FROM docs_plain WHERE tenant_id = ''t42'' AND body <> ''''' INTO n;
        END CASE;
        IF kind < 5 AND b IS NULL THEN RAISE EXCEPTION 'lookup of % found nothing', k; END IF;
        IF kind >= 5 AND n <> per_tenant THEN RAISE EXCEPTION 'scan saw % rows', n; END IF;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

CREATE TEMP TABLE timings (kind int, ms float8);
GRANT ALL ON timings TO PUBLIC;

SET ROLE encml_bench_app;
SELECT encml.set_tenant('t42');
\o

-- Every round runs each kind once, in an order that rotates from round to round.
DO $$
DECLARE runs int := (SELECT runs FROM params);
BEGIN
    PERFORM pg_temp.batch(k) FROM generate_series(1, 6) k;    -- warm-up
    FOR r IN 1 .. runs LOOP
        INSERT INTO timings SELECT 1 + (k + r) % 6, pg_temp.batch(1 + (k + r) % 6) FROM generate_series(0, 5) k;
    END LOOP;
END $$;
INSERT INTO tresults
SELECT m.ord, format(m.name, p.lookups, p.scans, p.trows / 100),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timings WHERE kind = m.isolated),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM timings WHERE kind = m.plain)
  FROM params p, (VALUES
      (1, '%1$s point lookups, cached plan', 1, 2),
      (2, '%1$s point lookups, planned each time', 3, 4),
      (3, '%2$s scans of the tenant''s %3$s rows', 5, 6)) AS m(ord, name, isolated, plain);

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Tenant isolation benchmark:' :trows 'rows across 100 tenants; median of' :runs 'rounds.'
\echo 'Baseline: the same query on a twin table with RLS off and a literal tenant_id = ''t42'' filter. Target: x_baseline <= 1.1'
SELECT name AS measure, round(isolated_ms::numeric, 2) AS isolated_ms, round(plain_ms::numeric, 2) AS baseline_ms,
       round((isolated_ms / plain_ms)::numeric, 3) AS x_baseline
  FROM tresults ORDER BY ord;
\echo 'Plans (isolated, then literal filter):'
EXPLAIN (COSTS OFF) SELECT body FROM docs_isolated WHERE id = 4241;
EXPLAIN (COSTS OFF) SELECT body FROM docs_plain WHERE tenant_id = 't42' AND id = 4241;
EXPLAIN (COSTS OFF) SELECT count(*) FROM docs_isolated WHERE body <> '';
EXPLAIN (COSTS OFF) SELECT count(*) FROM docs_plain WHERE tenant_id = 't42' AND body <> '';
\set QUIET on
\o /dev/null
RESET ROLE;
DROP TABLE docs_isolated, docs_plain;
SELECT count(encml.drop_tenant('t' || i)) FROM generate_series(1, 100) i;
DROP ROLE encml_bench_app;
