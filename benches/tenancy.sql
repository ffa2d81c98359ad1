-- Benchmark of tenant isolation: a table under encml.enable_tenant_isolation (RLS forced, policy
-- tenant_id = encml.current_tenant()) against a twin with RLS off queried with a literal
-- tenant_id filter. :trows rows across 100 tenants, primary key (tenant_id, id) on both.
-- Each round runs the isolated and the plain batch back to back (order alternating); the table
-- shows the median round.
\set QUIET on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE params AS
SELECT :trows::bigint AS trows, :tlookups::int AS lookups, :tscans::int AS scans, :runs::int AS runs;
GRANT SELECT ON params TO PUBLIC;
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

SET ROLE encml_bench_app;
SELECT encml.set_tenant('t42');
-- Tenant t42 holds the ids 41, 141, 241, ...

-- Point lookups with a cached plan (prepared statements, PL/pgSQL).
DO $$
DECLARE iso float8[] := '{}'; pl float8[] := '{}'; t0 timestamptz; b text; k bigint;
        p params := (SELECT params FROM params);
        per_tenant bigint := (SELECT trows / 100 FROM params);
BEGIN
    FOR r IN 1 .. p.runs LOOP
        FOR side IN 0 .. 1 LOOP
            t0 := clock_timestamp();
            FOR i IN 1 .. p.lookups LOOP
                k := 41 + 100 * ((i * 7919) % per_tenant);
                IF (side + r) % 2 = 0 THEN
                    SELECT body INTO b FROM docs_isolated WHERE id = k;
                ELSE
                    SELECT body INTO b FROM docs_plain WHERE tenant_id = 't42' AND id = k;
                END IF;
                IF b IS NULL THEN RAISE EXCEPTION 'lookup of % found nothing', k; END IF;
            END LOOP;
            IF (side + r) % 2 = 0 THEN
                iso := iso || extract(epoch FROM clock_timestamp() - t0) * 1000;
            ELSE
                pl := pl || extract(epoch FROM clock_timestamp() - t0) * 1000;
            END IF;
        END LOOP;
    END LOOP;
    INSERT INTO tresults SELECT 1, format('%s point lookups, cached plan', p.lookups),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(iso) x),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(pl) x);
END $$;

-- Point lookups planned every time (simple query protocol).
DO $$
DECLARE iso float8[] := '{}'; pl float8[] := '{}'; t0 timestamptz; b text; k bigint;
        p params := (SELECT params FROM params);
        per_tenant bigint := (SELECT trows / 100 FROM params);
BEGIN
    FOR r IN 1 .. p.runs LOOP
        FOR side IN 0 .. 1 LOOP
            t0 := clock_timestamp();
            FOR i IN 1 .. p.lookups LOOP
                k := 41 + 100 * ((i * 7919) % per_tenant);
                IF (side + r) % 2 = 0 THEN
                    EXECUTE 'SELECT body FROM docs_isolated WHERE id = $1' INTO b USING k;
                ELSE
                    EXECUTE 'SELECT body FROM docs_plain WHERE tenant_id = ''t42'' AND id = $1' INTO b USING k;
                END IF;
                IF b IS NULL THEN RAISE EXCEPTION 'lookup of % found nothing', k; END IF;
            END LOOP;
            IF (side + r) % 2 = 0 THEN
                iso := iso || extract(epoch FROM clock_timestamp() - t0) * 1000;
            ELSE
                pl := pl || extract(epoch FROM clock_timestamp() - t0) * 1000;
            END IF;
        END LOOP;
    END LOOP;
    INSERT INTO tresults SELECT 2, format('%s point lookups, planned each time', p.lookups),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(iso) x),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(pl) x);
END $$;

-- A scan of the tenant's rows (trows / 100 of them).
DO $$
DECLARE iso float8[] := '{}'; pl float8[] := '{}'; t0 timestamptz; n bigint;
        p params := (SELECT params FROM params);
BEGIN
    FOR r IN 1 .. p.runs LOOP
        FOR side IN 0 .. 1 LOOP
            t0 := clock_timestamp();
            FOR i IN 1 .. p.scans LOOP
                IF (side + r) % 2 = 0 THEN
                    EXECUTE 'SELECT count(*) FROM docs_isolated WHERE body <> ''''' INTO n;
                ELSE
                    EXECUTE 'SELECT count(*) FROM docs_plain WHERE tenant_id = ''t42'' AND body <> ''''' INTO n;
                END IF;
                IF n <> p.trows / 100 THEN RAISE EXCEPTION 'scan saw % rows', n; END IF;
            END LOOP;
            IF (side + r) % 2 = 0 THEN
                iso := iso || extract(epoch FROM clock_timestamp() - t0) * 1000;
            ELSE
                pl := pl || extract(epoch FROM clock_timestamp() - t0) * 1000;
            END IF;
        END LOOP;
    END LOOP;
    INSERT INTO tresults SELECT 3, format('%s scans of the tenant''s %s rows', p.scans, p.trows / 100),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(iso) x),
        (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(pl) x);
END $$;

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Tenant isolation benchmark:' :trows 'rows across 100 tenants; median of' :runs 'rounds (target: x_literal <= 1.1)'
SELECT name AS measure, round(isolated_ms::numeric, 2) AS isolated_ms, round(plain_ms::numeric, 2) AS literal_filter_ms,
       round((isolated_ms / plain_ms)::numeric, 3) AS x_literal
  FROM tresults ORDER BY ord;
\echo 'Plans (isolated, then literal filter):'
EXPLAIN (COSTS OFF) SELECT body FROM docs_isolated WHERE id = 4241;
EXPLAIN (COSTS OFF) SELECT body FROM docs_plain WHERE tenant_id = 't42' AND id = 4241;
EXPLAIN (COSTS OFF) SELECT count(*) FROM docs_isolated WHERE body <> '';
EXPLAIN (COSTS OFF) SELECT count(*) FROM docs_plain WHERE tenant_id = 't42' AND body <> '';
\set QUIET on
RESET ROLE;
DROP TABLE docs_isolated, docs_plain;
SELECT count(encml.drop_tenant('t' || i)) FROM generate_series(1, 100) i;
DROP ROLE encml_bench_app;
