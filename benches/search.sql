-- Benchmark of searchable encryption (det_text, ore_int8) against plaintext twins, one run.
\set QUIET on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
SELECT encml.create_key('bench-det', 'deterministic') AS kd \gset
SELECT encml.create_key('bench-ore', 'ore') AS ko \gset
CREATE TEMP TABLE sresults (ord int, name text, ms float8, note text);
-- psql variables do not reach inside DO blocks: hand them over in a table.
CREATE TEMP TABLE params AS SELECT :srows::bigint AS srows, :lookups::int AS lookups, :ranges::int AS ranges;

-- ore_encrypt throughput on one core.
DO $$
DECLARE t0 timestamptz; n bigint; srows bigint := (SELECT srows FROM params);
BEGIN
    t0 := clock_timestamp();
    SELECT count(encml.ore_encrypt(i, (SELECT id FROM encml.keys WHERE name = 'bench-ore'))) INTO n
      FROM generate_series(1::bigint, srows) i;
    INSERT INTO sresults VALUES (1, 'ore_encrypt throughput (values/s)',
        extract(epoch FROM clock_timestamp() - t0) * 1000, '');
END $$;

CREATE TABLE s AS
SELECT i AS id,
       'user' || i || '@example.com' AS email,
       encml.det_encrypt('user' || i || '@example.com', :'kd') AS email_det,
       (i * 7919) % (:srows * 10) AS amount,
       encml.ore_encrypt((i * 7919) % (:srows * 10), :'ko') AS amount_ore
  FROM generate_series(1::bigint, :srows::bigint) i;
VACUUM ANALYZE s;

CREATE FUNCTION pg_temp.timed(sql text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE sql;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

INSERT INTO sresults VALUES
 (10, 'btree build: bigint', pg_temp.timed('CREATE INDEX s_amount ON s (amount)'), ''),
 (11, 'btree build: ore_int8', pg_temp.timed('CREATE INDEX s_amount_ore ON s (amount_ore)'), ''),
 (12, 'btree build: text', pg_temp.timed('CREATE INDEX s_email ON s (email)'), ''),
 (13, 'btree build: det_text', pg_temp.timed('CREATE INDEX s_email_det ON s (email_det)'), '');
ANALYZE s;

-- Equality lookups: median of :lookups random lookups (the det_text one includes det_encrypt).
DO $$
DECLARE plain float8[] := '{}'; det float8[] := '{}'; t0 timestamptz; r bigint; v text;
        k uuid := (SELECT id FROM encml.keys WHERE name = 'bench-det');
        srows bigint := (SELECT srows FROM params); lookups int := (SELECT lookups FROM params);
BEGIN
    FOR i IN 1 .. lookups LOOP
        v := 'user' || (1 + (i * 104729) % srows) || '@example.com';
        t0 := clock_timestamp();
        EXECUTE 'SELECT id FROM s WHERE email = $1' INTO r USING v;
        plain := plain || extract(epoch FROM clock_timestamp() - t0) * 1000;
        t0 := clock_timestamp();
        EXECUTE 'SELECT id FROM s WHERE email_det = encml.det_encrypt($1, $2)' INTO r USING v, k;
        det := det || extract(epoch FROM clock_timestamp() - t0) * 1000;
        IF r IS NULL THEN RAISE EXCEPTION 'lookup found nothing'; END IF;
    END LOOP;
    INSERT INTO sresults SELECT 20, 'equality lookup: text (median)', percentile_cont(0.5) WITHIN GROUP (ORDER BY x), '' FROM unnest(plain) x;
    INSERT INTO sresults SELECT 21, 'equality lookup: det_text (median)', percentile_cont(0.5) WITHIN GROUP (ORDER BY x), '' FROM unnest(det) x;
END $$;

-- Range queries returning about 1% of the rows: median of :ranges random ranges.
DO $$
DECLARE plain float8[] := '{}'; ore float8[] := '{}'; t0 timestamptz; n1 bigint; n2 bigint; lo bigint;
        k uuid := (SELECT id FROM encml.keys WHERE name = 'bench-ore');
        ranges int := (SELECT ranges FROM params); srows bigint := (SELECT srows FROM params);
BEGIN
    FOR i IN 1 .. ranges LOOP
        lo := (i * 7717) % greatest(srows * 10 - srows / 10, 1);
        t0 := clock_timestamp();
        EXECUTE 'SELECT count(*) FROM s WHERE amount BETWEEN $1 AND $2' INTO n1 USING lo, lo + srows / 10;
        plain := plain || extract(epoch FROM clock_timestamp() - t0) * 1000;
        t0 := clock_timestamp();
        EXECUTE 'SELECT count(*) FROM s WHERE amount_ore BETWEEN encml.ore_encrypt($1, $3) AND encml.ore_encrypt($2, $3)'
            INTO n2 USING lo, lo + srows / 10, k;
        ore := ore || extract(epoch FROM clock_timestamp() - t0) * 1000;
        IF n1 <> n2 THEN RAISE EXCEPTION 'range counts differ: % vs %', n1, n2; END IF;
    END LOOP;
    INSERT INTO sresults SELECT 30, 'range query ~1%: bigint (median)', percentile_cont(0.5) WITHIN GROUP (ORDER BY x), '' FROM unnest(plain) x;
    INSERT INTO sresults SELECT 31, 'range query ~1%: ore_int8 (median)', percentile_cont(0.5) WITHIN GROUP (ORDER BY x), '' FROM unnest(ore) x;
END $$;

-- ORE text input (COPY, INSERT of client-made values) with its MAC check (issue 27) against the
-- same input without it (encml.verify_ore_input = off, superuser-only) and bigint's: best of 3.
CREATE TEMP TABLE ore_text AS SELECT amount_ore::text AS t, amount::text AS p FROM s;
DO $$
DECLARE checked float8 := 'Infinity'; unchecked float8 := 'Infinity'; plain float8 := 'Infinity';
BEGIN
    FOR i IN 1 .. 3 LOOP
        plain := least(plain, pg_temp.timed('SELECT count(p::bigint) FROM ore_text'));
        PERFORM set_config('encml.verify_ore_input', 'off', true);
        unchecked := least(unchecked, pg_temp.timed('SELECT count(t::encml.ore_int8) FROM ore_text'));
        PERFORM set_config('encml.verify_ore_input', 'on', true);
        checked := least(checked, pg_temp.timed('SELECT count(t::encml.ore_int8) FROM ore_text'));
    END LOOP;
    INSERT INTO sresults VALUES (40, 'text input: bigint (best of 3)', plain, ''),
        (41, 'text input: ore_int8, MAC not checked (best of 3)', unchecked, ''),
        (42, 'text input: ore_int8, MAC checked (best of 3)', checked, '');
END $$;

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Searchable encryption benchmark:' :srows 'rows; lookups:' :lookups ', ranges:' :ranges
SELECT name AS measure,
       CASE WHEN ord = 1 THEN round((:srows / (ms / 1000))::numeric, 0) ELSE round(ms::numeric, 3) END AS "ms (or values/s)",
       CASE WHEN ord IN (11, 13, 21, 31, 41) THEN round((ms / lag(ms) OVER (ORDER BY ord))::numeric, 2)
            WHEN ord = 42 THEN round((ms / lag(ms, 2) OVER (ORDER BY ord))::numeric, 2) END AS x_plaintext,
       CASE WHEN ord = 42 THEN round((ms / lag(ms) OVER (ORDER BY ord))::numeric, 2) END AS x_unchecked
  FROM sresults ORDER BY ord;
SELECT round(avg(pg_column_size(email)), 1) AS text_bytes, round(avg(pg_column_size(email_det)), 1) AS det_text_bytes,
       round(avg(pg_column_size(amount)), 1) AS bigint_bytes, round(avg(pg_column_size(amount_ore)), 1) AS ore_int8_bytes
  FROM s;
SELECT pg_size_pretty(pg_relation_size('s_amount')) AS bigint_index, pg_size_pretty(pg_relation_size('s_amount_ore')) AS ore_index,
       pg_size_pretty(pg_relation_size('s_email')) AS text_index, pg_size_pretty(pg_relation_size('s_email_det')) AS det_index;
