-- A coordinator and two workers (scripts/citus-cluster.sh ran CREATE EXTENSION and
-- encml.citus_setup() on the coordinator).
SELECT nodeport - (SELECT min(nodeport) FROM pg_dist_node) AS node, noderole, shouldhaveshards FROM pg_dist_node ORDER BY nodeport;
-- Citus created the extension on the workers too.
SELECT success, result = (SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml') AS coordinator_version
  FROM run_command_on_workers($$SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'$$);
-- The key and tenant catalog is replicated to every node; ledgers and audit log stay per node.
SELECT logicalrelid, partmethod, repmodel FROM pg_dist_partition
 WHERE logicalrelid::text LIKE 'encml.%' ORDER BY logicalrelid::text;
-- Running it again changes nothing.
SELECT encml.citus_setup();
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'encml.%';
-- The foreign keys among the catalog tables are back, now between reference tables.
SELECT conrelid::regclass, confrelid::regclass FROM pg_constraint
 WHERE contype = 'f' AND conrelid = ANY (encml.citus_replicated_tables()) ORDER BY conrelid::text;
-- Helpers for the other files: errors as text, and plans without shard numbers and ports.
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g'), '_[0-9]{6}\M', '_N', 'g');
END
$$;
CREATE FUNCTION public.plan(sql text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF, VERBOSE) ' || sql LOOP
        line := regexp_replace(line, '_[0-9]{6}\M', '_N', 'g');
        line := regexp_replace(line, 'port=[0-9]+', 'port=N', 'g');
        line := regexp_replace(line, '''[0-9]+''::oid', '''<oid>''::oid', 'g');
        line := regexp_replace(line, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
        line := regexp_replace(line, '''[A-Za-z0-9+/=]{20,}''', '''<ciphertext>''', 'g');
        RETURN NEXT line;
    END LOOP;
END
$$;
-- Whether every node holds the same replicated catalog (roles compared by name: their oids
-- differ between nodes).
CREATE FUNCTION public.catalog_in_sync() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE t regclass; n bigint;
BEGIN
    FOREACH t IN ARRAY encml.citus_replicated_tables() LOOP
        SELECT count(DISTINCT result) INTO n FROM run_command_on_all_nodes(
            format('SELECT md5(coalesce(string_agg(r::text, %L ORDER BY r::text), %L)) FROM %s r', ',', '', t));
        IF n <> 1 THEN
            RAISE NOTICE '% differs between nodes', t;
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
SELECT catalog_in_sync();
