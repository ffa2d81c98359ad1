-- Benchmark of the zero-trust checks on the decrypt path, in one run:
--  1. "checks trivial": a superuser decrypting under an unlabelled key (the per-key privilege
--     and clearance checks still run, and are answered at once);
--  2. "grants + clearances": a role holding decrypt through grant_key on a key labelled 'pii',
--     cleared for 'pii', with an application_name condition on the label;
--  3. the same as 2 with the exfiltration counter on (encml.decrypt_alert_threshold set high
--     enough never to alert);
--  4. plaintext: the same rows' clear text (length), for scale.
-- :zrows values per batch; batches rotate order round after round; median batch time.
\set QUIET on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
SET application_name = 'bench';
SET encml.audit_decrypt = 'off';
\o /dev/null
DROP TABLE IF EXISTS zt_vault;
DROP ROLE IF EXISTS encml_bench_reader;
CREATE ROLE encml_bench_reader NOLOGIN;
CREATE TEMP TABLE params AS SELECT :zrows::bigint AS zrows, :runs::int AS runs;
SELECT encml.create_key('bench-zt-plain') AS k1 \gset
SELECT encml.create_key('bench-zt-pii') AS k2 \gset
SELECT encml.label_key(:'k2', 'pii');
SELECT encml.grant_key(:'k2', 'encml_bench_reader', 'decrypt');
SELECT encml.grant_clearance('encml_bench_reader', 'pii');
SELECT encml.set_clearance_condition('pii', application_names => '{bench}');
CREATE TABLE zt_vault AS
SELECT i, md5(i::text) AS p, encml.encrypt(md5(i::text), :'k1') AS c1, encml.encrypt(md5(i::text), :'k2') AS c2
  FROM generate_series(1, :zrows::bigint) i;
VACUUM ANALYZE zt_vault;
GRANT SELECT ON zt_vault TO encml_bench_reader;

CREATE FUNCTION pg_temp.batch(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; n bigint;
BEGIN
    IF kind = 3 THEN PERFORM set_config('encml.decrypt_alert_threshold', '2000000000', false); END IF;
    IF kind IN (2, 3) THEN PERFORM set_config('role', 'encml_bench_reader', false); END IF;
    t0 := clock_timestamp();
    CASE kind
    WHEN 1 THEN SELECT count(encml.decrypt_text(c1)) INTO n FROM zt_vault;
    WHEN 2, 3 THEN SELECT count(encml.decrypt_text(c2)) INTO n FROM zt_vault;
    ELSE SELECT count(length(p)) INTO n FROM zt_vault;
    END CASE;
    t0 := clock_timestamp() - (clock_timestamp() - t0);
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
-- The role switch and setting are undone by the caller between batches (RESET ROLE).
CREATE TEMP TABLE timings (kind int, ms float8);
DO $$
DECLARE runs int := (SELECT runs FROM params); ms float8;
BEGIN
    FOR r IN 0 .. runs LOOP
        FOR k IN 0 .. 3 LOOP
            ms := pg_temp.batch(1 + (k + r) % 4);
            PERFORM set_config('role', 'none', false);
            PERFORM set_config('encml.decrypt_alert_threshold', '0', false);
            IF r > 0 THEN INSERT INTO timings VALUES (1 + (k + r) % 4, ms); END IF;   -- round 0 warms up
        END LOOP;
    END LOOP;
END $$;
CREATE TEMP TABLE zresults AS
SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM timings GROUP BY kind;

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\o
\echo
\echo 'Zero-trust checks on decryption:' :zrows 'values of 32 bytes per batch; median of' :runs 'rounds.'
\echo 'Targets: grants + clearances <= 1.1 x checks trivial; exfiltration counter <= 1.05 x without.'
SELECT m.measure, round(r.ms::numeric, 1) AS ms, round((r.ms * 1000 / p.zrows)::numeric, 3) AS us_per_value,
       round((r.ms / b.ms)::numeric, 3) AS x_baseline, m.baseline
  FROM params p, zresults r
  JOIN (VALUES (1, 'decrypt, checks trivial (superuser, unlabelled key)', 1, '-'),
               (2, 'decrypt, grants + clearances + condition', 1, 'checks trivial'),
               (3, 'decrypt, grants + clearances + exfiltration counter', 2, 'grants + clearances'),
               (4, 'plaintext length() (scale)', 1, 'checks trivial')) AS m(kind, measure, base, baseline)
    ON m.kind = r.kind
  JOIN zresults b ON b.kind = m.base
 ORDER BY m.kind;
\set QUIET on
\o /dev/null
DROP TABLE zt_vault;
SELECT encml.set_clearance_condition('pii');
SELECT encml.revoke_clearance('encml_bench_reader', 'pii');
SELECT encml.destroy_key(:'k1'), encml.destroy_key(:'k2');
DROP OWNED BY encml_bench_reader;
DROP ROLE encml_bench_reader;
\o
