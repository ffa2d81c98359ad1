-- Issue 27: nothing the extension runs under a caller's identity may resolve an operator or a
-- function through the caller's search_path. Enumerating, not sampling: a reader plants traps
-- for the comparison, concatenation, pattern and jsonb operators of every built-in type and for
-- the built-in functions SQL code commonly calls (every overload, same signatures) in a schema
-- of its own ahead of pg_catalog, then calls every function of the extension (members in
-- pg_depend) it may EXECUTE, with a sample argument of each type. A trap that fires counts in a
-- sequence (so a caught error cannot hide it) and raises. Judged by behaviour, not proconfig.
SET client_min_messages = warning;
CREATE ROLE encml_plant_all;
RESET client_min_messages;
CREATE SCHEMA plant AUTHORIZATION encml_plant_all;

-- What the reader may use, as the documentation grants it: keys of each purpose.
SELECT encml.create_key('plant-aead', 'aead') AS ka \gset
SELECT encml.create_key('plant-det', 'deterministic') AS kd \gset
SELECT encml.create_key('plant-ore', 'ore') AS ko \gset
SELECT encml.create_key('plant-fpe', 'fpe') AS kf \gset
SELECT count(encml.grant_key(k, 'encml_plant_all', p))
  FROM unnest(ARRAY[:'ka', :'kd', :'ko', :'kf']::uuid[]) k, unnest(ARRAY['encrypt', 'decrypt']) p;
CREATE TABLE public.plant_all_t (id int, email text, secret encml.enc_bytea);
INSERT INTO public.plant_all_t VALUES (1, 'ann@example.com', encml.encrypt('s', :'ka'));
SELECT encml.set_masking_rule('public.plant_all_t', 'email', 'email');
SELECT encml.apply_masking('public.plant_all_t');
GRANT SELECT ON public.plant_all_t, public.plant_all_t_masked TO encml_plant_all;
-- A registered data-subject table, so the subject functions reach their queries on it; and the
-- roles that are not administrators.
SELECT encml.register_subject_column('public.plant_all_t', 'email');
GRANT encml_subject_processor, encml_fhe_contributor, encml_auditor TO encml_plant_all;

-- One sample per argument type (NULL where no value can be made here: the call still runs).
CREATE TABLE plant_samples (type regtype PRIMARY KEY, sample text NOT NULL);
INSERT INTO plant_samples VALUES
 ('anyelement', '1'), ('bigint', '1::bigint'), ('boolean', 'true'), ('bytea', '''\x6869''::bytea'),
 ('cstring', '''x''::cstring'), ('date', '''2026-01-01''::date'), ('double precision', '1.5::float8'),
 ('double precision[]', 'ARRAY[1.5, 2.5]::float8[]'), ('integer', '1'), ('integer[]', 'ARRAY[1, 2]'),
 ('jsonb', '''{"a": "x", "b": [1, 2]}''::jsonb'), ('name', 'current_user'),
 ('oid', '''pg_class''::regclass::oid'), ('oid[]', 'ARRAY[''pg_class''::regclass::oid]'),
 ('real[]', 'ARRAY[1.5, 2.5]::real[]'), ('regclass', '''public.plant_all_t''::regclass'),
 ('regrole', '''encml_plant_all''::regrole'), ('regrole[]', 'ARRAY[''encml_plant_all''::regrole]'),
 ('smallint', '1::int2'), ('smallint[]', 'ARRAY[1, 2]::int2[]'), ('text', '''x'''),
 ('text[]', 'ARRAY[''a'']'), ('timestamp with time zone', '''2026-01-01 00:00+00''::timestamptz'),
 ('encml.enc_bytea', format('%L::encml.enc_bytea', encml.encrypt('s', :'ka')::text)),
 ('encml.det_text', format('%L::encml.det_text', encml.det_encrypt('s', :'kd')::text)),
 ('encml.ore_int8', format('%L::encml.ore_int8', encml.ore_encrypt(5, :'ko')::text)),
 ('encml.ore_float8', format('%L::encml.ore_float8', encml.ore_encrypt(5.5::float8, :'ko')::text)),
 ('encml.ore_timestamptz', format('%L::encml.ore_timestamptz', encml.ore_encrypt(now(), :'ko')::text));
-- Arguments whose name says what they hold get a value that gets the call further.
SELECT encml.create_tenant('plant-tenant');
SELECT encml.grant_tenant('plant-tenant', 'encml_plant_all');
SELECT encml.set_privacy_budget('encml_plant_all', 100.0, 1e-3);
SET ROLE encml_plant_all;
SELECT lo_from_bytea(0, '\x6869') AS plant_lo \gset
RESET ROLE;
CREATE TABLE plant_arg_samples (name text PRIMARY KEY, sample text NOT NULL);
INSERT INTO plant_arg_samples VALUES
 ('aad', 'NULL::text'), ('alphabet', '''0123456789'''), ('chunk_size', '65536'), ('delta', '1e-6::float8'),
 ('epsilon', '1.0::float8'), ('expected_mac', 'NULL::text'), ('lower', '0'), ('upper', '10'),
 ('pan', '''4111111111111111'''), ('token', '''4111111111111111'''), ('privilege', '''encrypt'''),
 ('purpose', '''aead'''), ('src', format('%s::oid', :plant_lo)), ('offset', '0'), ('length', '2'),
 ('tenant', '''plant-tenant'''), ('subject', '''ann@example.com'''), ('tweak', 'NULL::text'), ('keep_first', '0'),
 ('value', '''0123456789''');
-- Key arguments get a key of the purpose the function's name asks for.
CREATE TABLE plant_keys AS SELECT :'ka'::uuid AS ka, :'kd'::uuid AS kd, :'ko'::uuid AS ko, :'kf'::uuid AS kf;
CREATE FUNCTION pg_temp.key_for(fn text) RETURNS text LANGUAGE sql AS $$
    SELECT quote_literal(CASE WHEN fn ~ 'ore' THEN ko WHEN fn ~ 'det' THEN kd
                              WHEN fn ~ 'fpe|token' THEN kf ELSE ka END) || '::uuid' FROM plant_keys $$;

-- The calls, built before any trap exists.
CREATE TABLE plant_calls AS
SELECT p.oid::regprocedure AS fn, p.prokind,
       format(CASE WHEN p.prokind = 'a' THEN 'SELECT %s.%s(%s) FROM (VALUES (1)) v' ELSE 'SELECT %s.%s(%s)' END,
              quote_ident(n.nspname), quote_ident(p.proname),
              coalesce((SELECT string_agg(CASE WHEN a.t = 'uuid'::regtype THEN pg_temp.key_for(p.proname)
                                               ELSE coalesce(na.sample, s.sample, format('NULL::%s', a.t)) END, ', ' ORDER BY a.i)
                          FROM unnest(p.proargtypes::regtype[]) WITH ORDINALITY a(t, i)
                          LEFT JOIN plant_samples s ON s.type = a.t
                          LEFT JOIN LATERAL (SELECT format('(%s)::%s', x.sample, a.t) AS sample
                                               FROM plant_arg_samples x WHERE x.name = p.proargnames[a.i]
                                                AND a.t IN ('text'::regtype, 'integer'::regtype, 'bigint'::regtype,
                                                            'double precision'::regtype, 'oid'::regtype)) na ON true), '')) AS call
  FROM pg_depend d JOIN pg_proc p ON d.objid = p.oid JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_encrypt_ml')
   AND p.prokind IN ('f', 'a')
   AND has_function_privilege('encml_plant_all', p.oid, 'EXECUTE')
   AND NOT 'internal'::regtype = ANY (p.proargtypes::regtype[]);
CREATE TABLE plant_results (fn regprocedure, result text, planted bool);
GRANT SELECT ON plant_calls TO encml_plant_all;
GRANT INSERT ON plant_results TO encml_plant_all;

-- The traps: every overload of these operators and functions, copied into plant with the same
-- argument and result types.
SET ROLE encml_plant_all;
CREATE SEQUENCE plant.hits;
GRANT USAGE ON SCHEMA plant TO PUBLIC;
GRANT USAGE, UPDATE ON SEQUENCE plant.hits TO PUBLIC;
DO $$
DECLARE r record; made int := 0;
BEGIN
    FOR r IN
        SELECT o.oid, o.oprname, o.oprleft::regtype AS l, o.oprright::regtype AS rt, o.oprresult::regtype AS res
          FROM pg_operator o
         WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b'
           AND o.oprname IN ('=', '<>', '<', '>', '<=', '>=', '||', '~~', '~~*', '!~~', '~', '~*', '!~',
                             '->', '->>', '#>', '#>>', '@>', '<@', '?', '?|', '?&', '&&', '+', '-')
           AND (SELECT bool_and(t NOT IN ('internal'::regtype, 'cstring'::regtype, '"any"'::regtype))
                  FROM unnest(ARRAY[o.oprleft, o.oprright, o.oprresult]::regtype[]) t)
    LOOP
        EXECUTE format('CREATE FUNCTION plant.op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
                       r.oid, r.l, r.rt, r.res,
                       format('BEGIN PERFORM pg_catalog.nextval(''plant.hits''); RAISE EXCEPTION ''PLANTED operator %s(%s, %s)''; END',
                              r.oprname, r.l, r.rt));
        EXECUTE format('CREATE OPERATOR plant.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = plant.op_%s)',
                       r.oprname, r.l, r.rt, r.oid);
        made := made + 1;
    END LOOP;
    FOR r IN
        SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid) AS args,
               CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END || p.prorettype::regtype AS res
          FROM pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND p.provariadic = 0
           AND p.proname IN ('lower', 'upper', 'length', 'octet_length', 'btrim', 'ltrim', 'rtrim', 'substr',
                             'substring', 'replace', 'split_part', 'strpos', 'left', 'right', 'starts_with',
                             'regexp_replace', 'regexp_match', 'regexp_matches', 'translate', 'repeat', 'lpad',
                             'rpad', 'md5', 'sha256', 'encode', 'decode', 'convert_to', 'convert_from',
                             'quote_ident', 'quote_literal', 'quote_nullable', 'format', 'to_char', 'to_hex',
                             'now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp',
                             'current_setting', 'set_config', 'current_database', 'current_schema',
                             'pg_has_role', 'has_table_privilege', 'has_column_privilege', 'has_function_privilege',
                             'has_schema_privilege', 'has_database_privilege', 'to_regclass', 'to_regrole',
                             'to_regproc', 'to_regprocedure', 'to_regtype', 'to_regnamespace',
                             'array_length', 'array_upper', 'array_lower', 'cardinality', 'unnest',
                             'array_position', 'array_to_string', 'string_to_array', 'array_append',
                             'array_cat', 'array_remove', 'generate_series', 'generate_subscripts',
                             'jsonb_typeof', 'jsonb_array_length', 'jsonb_array_elements', 'jsonb_each',
                             'jsonb_object_keys', 'jsonb_extract_path', 'jsonb_extract_path_text',
                             'jsonb_set', 'jsonb_strip_nulls', 'jsonb_pretty', 'to_jsonb', 'row_to_json',
                             'to_json', 'jsonb_path_query', 'abs', 'round', 'floor', 'ceil', 'sqrt', 'ln',
                             'exp', 'power', 'random', 'gen_random_uuid', 'uuid_in', 'txid_current',
                             'pg_backend_pid', 'pg_current_xact_id', 'pg_relation_size', 'pg_table_size',
                             'pg_get_userbyid', 'pg_get_expr', 'pg_get_viewdef', 'pg_get_constraintdef',
                             'pg_get_indexdef', 'pg_get_triggerdef', 'pg_get_functiondef',
                             'pg_column_size', 'pg_typeof', 'obj_description', 'col_description',
                             'inet_client_addr', 'version', 'nextval', 'currval', 'setval', 'lo_open',
                             'lo_close', 'loread', 'lowrite', 'lo_create', 'lo_unlink', 'lo_get', 'lo_put',
                             'hashtext', 'hashint8', 'textlen', 'int8', 'int4', 'text', 'bool', 'numeric',
                             'float8', 'timestamptz', 'date_trunc', 'date_part', 'extract', 'age',
                             'make_interval', 'justify_interval', 'pg_advisory_xact_lock',
                             'pg_try_advisory_xact_lock', 'pg_notify', 'pg_sleep')
           AND NOT EXISTS (SELECT FROM unnest(p.proargtypes::regtype[] || p.prorettype::regtype) t
                            WHERE t IN ('internal'::regtype, 'cstring'::regtype, '"any"'::regtype,
                                        'trigger'::regtype, 'event_trigger'::regtype, 'record'::regtype))
    LOOP
        BEGIN
            EXECUTE format('CREATE FUNCTION plant.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
                           r.proname, r.args, r.res,
                           format('BEGIN PERFORM pg_catalog.nextval(''plant.hits''); RAISE EXCEPTION ''PLANTED function %s(%s)''; END',
                                  r.proname, r.args));
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN
            NULL; -- a signature plpgsql cannot take (a few polymorphic results)
        END;
    END LOOP;
    RAISE NOTICE 'more than 500 traps planted: %', made > 500;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA plant TO PUBLIC;
-- The traps work: under the planted path a plain comparison and lower() fire them.
SET search_path = plant, pg_catalog;
DO $$ BEGIN PERFORM 'a'::text = 'a'::text; EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLERRM; END $$;
DO $$ BEGIN PERFORM lower('A'::text); EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLERRM; END $$;
RESET search_path;

-- Every call, with the traps ahead of pg_catalog. The driver qualifies everything it runs while
-- the planted path is set, and sets it only around each call.
DO $$
DECLARE c record; res text; before bigint; after bigint;
BEGIN
    FOR c IN SELECT fn, call FROM public.plant_calls ORDER BY fn::text LOOP
        before := pg_catalog.pg_sequence_last_value('plant.hits'::regclass);
        PERFORM pg_catalog.set_config('search_path', 'plant, pg_catalog', true);
        BEGIN
            EXECUTE c.call;
            res := 'ok';
        EXCEPTION WHEN OTHERS THEN
            res := pg_catalog.concat(SQLSTATE, ': ', SQLERRM);
        END;
        PERFORM pg_catalog.set_config('search_path', 'public', true);
        after := pg_catalog.pg_sequence_last_value('plant.hits'::regclass);
        INSERT INTO public.plant_results
            VALUES (c.fn, res, after IS DISTINCT FROM before OR res ~ 'PLANTED');
    END LOOP;
END $$;
-- The masked view under the planted path.
SET search_path = plant, pg_catalog;
SELECT id, email FROM public.plant_all_t_masked;
RESET search_path;
-- Every view of the extension this role may read, under the planted path (a trap that fires
-- raises, or is counted if the error is caught on the way).
DO $$
DECLARE v regclass; before bigint; n bigint; views int := 0;
BEGIN
    FOR v IN SELECT c.oid::regclass FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
              WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
                AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_encrypt_ml')
                AND c.relkind OPERATOR(pg_catalog.=) 'v' AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
              ORDER BY c.oid::regclass::text LOOP
        before := pg_catalog.pg_sequence_last_value('plant.hits'::regclass);
        PERFORM pg_catalog.set_config('search_path', 'plant, pg_catalog', true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', v) INTO n;
        PERFORM pg_catalog.set_config('search_path', 'public', true);
        IF pg_catalog.pg_sequence_last_value('plant.hits'::regclass) IS DISTINCT FROM before THEN
            RAISE WARNING 'a trap fired reading %', v;
        END IF;
        views := views OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RAISE NOTICE 'read % extension views under the planted path', views;
END $$;
RESET ROLE;

-- No trap fired: the list must stay empty.
SELECT fn, result FROM plant_results WHERE planted ORDER BY fn::text;
-- Every callable function was called, and most ran to the end with the sample arguments (162
-- of 237 when this was written; the rest stop at a privilege or input check).
SELECT count(*) AS called, count(*) = (SELECT count(*) FROM plant_calls) AS all_called,
       count(*) FILTER (WHERE result = 'ok') >= 150 AS most_completed
  FROM plant_results;

SET client_min_messages = warning;
DROP SCHEMA plant CASCADE;
RESET client_min_messages;
DROP VIEW public.plant_all_t_masked;
DROP TABLE public.plant_all_t, plant_samples, plant_arg_samples, plant_keys, plant_calls, plant_results;
SET client_min_messages = warning;
SELECT encml.forget_tenant('plant-tenant') IS NOT NULL AS forgotten;
RESET client_min_messages;
DROP OWNED BY encml_plant_all;
DROP ROLE encml_plant_all;
