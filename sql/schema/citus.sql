-- Citus (docs/citus.md): the catalog that encryption and decryption read becomes Citus
-- reference tables, so that a key created, rotated or destroyed on the coordinator is written to
-- every node in the same distributed (two-phase) transaction, and queries pushed down to the
-- workers find it there. The privacy-budget ledger and the audit log stay per node.

CREATE FUNCTION citus_replicated_tables() RETURNS regclass[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['encml.tenants', 'encml.tenant_members', 'encml.data_keys',
                 'encml.data_key_versions', 'encml.key_grants', 'encml.key_labels',
                 'encml.clearances', 'encml.clearance_conditions',
                 'encml.master_key_rotations']::regclass[]
$$;
COMMENT ON FUNCTION citus_replicated_tables() IS
    'pg_encrypt_ml: the catalog tables that encml.citus_setup() makes Citus reference tables (replicated to every node)';

CREATE FUNCTION citus_catalog_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_citus_catalog_changed';
REVOKE ALL ON FUNCTION citus_catalog_changed() FROM PUBLIC;
COMMENT ON FUNCTION citus_catalog_changed() IS
    'pg_encrypt_ml: statement trigger on the replicated catalog: every backend of the node drops its cached keys, grants and clearances at commit';

-- The checks shared by the Citus administration functions: Citus here, the caller owns the
-- extension, and this is the coordinator.
CREATE FUNCTION citus_require_coordinator_owner(what text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'CREATE EXTENSION citus first (docs/citus.md).';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT extowner FROM pg_extension WHERE extname = 'pg_encrypt_ml'), 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of pg_encrypt_ml may run %', what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT groupid FROM pg_dist_local_group) <> 0 THEN
        RAISE EXCEPTION 'encml.%() runs on the coordinator', what
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION citus_require_coordinator_owner(text) FROM PUBLIC;
COMMENT ON FUNCTION citus_require_coordinator_owner(text) IS
    'pg_encrypt_ml: internal: refuses Citus administration outside the coordinator or by anyone but the extension owner';

CREATE FUNCTION citus_setup() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tables regclass[] := encml.citus_replicated_tables();
    t regclass;
    fk record;
    fks text[][] := '{}';
BEGIN
    PERFORM encml.citus_require_coordinator_owner('citus_setup');
    -- Citus cannot turn a table into a reference table while a local table references it (it
    -- would convert the whole foreign-key graph, views included): take the foreign keys among
    -- the replicated tables off, replicate, and put them back between reference tables.
    FOR fk IN
        SELECT c.conrelid::regclass AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
          FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conrelid = ANY (tables)
           AND c.conrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
        -- The workers' copies of the table (created by CREATE EXTENSION there) have it too.
        PERFORM run_command_on_workers(
            format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.tbl, fk.conname));
        fks := fks || ARRAY[[fk.tbl::text, fk.conname::text, fk.def]];
    END LOOP;
    -- The trigger travels to every copy (shard) of the table; Citus copies triggers only
    -- when told that they are safe, which a trigger that only invalidates caches is.
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH t IN ARRAY tables LOOP
        IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = t) THEN
            IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t AND tgname = 'encml_catalog_changed') THEN
                EXECUTE format('CREATE TRIGGER encml_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                               'ON %s FOR EACH STATEMENT EXECUTE FUNCTION encml.citus_catalog_changed()', t);
            END IF;
            PERFORM create_reference_table(t);
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fks[i][1], fks[i][2], fks[i][3]);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION citus_setup() FROM PUBLIC;
COMMENT ON FUNCTION citus_setup() IS
    'pg_encrypt_ml: on a Citus coordinator, replicates the key and tenant catalog to every node as reference tables (run once after CREATE EXTENSION; docs/citus.md)';

COMMENT ON FUNCTION same_role(regrole, regrole) IS
    'pg_encrypt_ml: internal: role equality that Citus ships to other nodes by role name (role oids differ between nodes)';

-- A node added after citus_setup() receives the reference tables as a binary copy of another
-- node's shard, in which every regrole column is that node's role oid: on the new node those
-- oids name other roles or none. citus_resync_node() rewrites the new node's copy from the
-- coordinator's rows, with roles by name (each node resolves them to its own oids).
CREATE FUNCTION citus_resync_node(node_name text, node_port integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tables regclass[] := encml.citus_replicated_tables();
    t regclass;
    shard text;
    rows_text text[];
    tag text := '$r' || md5(random()::text) || '$';
    body text := 'PERFORM pg_catalog.set_config(''citus.enable_manual_changes_to_shards'', ''on'', true); ';
    counted text := 'SELECT 0';
    copied bigint := 0;
    ok boolean;
    outcome text;
BEGIN
    PERFORM encml.citus_require_coordinator_owner('citus_resync_node');
    IF NOT EXISTS (SELECT FROM pg_dist_node WHERE nodename = node_name AND nodeport = node_port
                                             AND groupid <> 0 AND isactive) THEN
        RAISE EXCEPTION 'no active Citus worker %:%', node_name, node_port
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
                    WHERE s.logicalrelid = tables[1] AND p.groupid = 0) THEN
        RAISE EXCEPTION 'the coordinator holds no copy of the replicated catalog'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the coordinator with citus_set_coordinator_host() (docs/citus.md).';
    END IF;
    -- Citus gives a new node its copies of the reference tables lazily (on the first shard
    -- move or new distributed table): make them now, so that they exist to be rewritten.
    PERFORM replicate_reference_tables('block_writes');
    -- No catalog change may slip in between the snapshot and the rewrite.
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', t);
    END LOOP;
    -- Children before parents when deleting, parents first when inserting (the foreign keys
    -- between the shards stay checked, and the cache-invalidation triggers fire).
    FOR i IN REVERSE array_length(tables, 1) .. 1 LOOP
        SELECT shard_name(tables[i], shardid) INTO shard FROM pg_dist_shard WHERE logicalrelid = tables[i];
        body := body || format('DELETE FROM %s; ', shard);
    END LOOP;
    FOREACH t IN ARRAY tables LOOP
        SELECT shard_name(t, shardid) INTO shard FROM pg_dist_shard WHERE logicalrelid = t;
        -- The coordinator's own copy, read here (roles printed by this node's names), never
        -- a copy on the node being repaired.
        EXECUTE format('SELECT array_agg(r::text) FROM %s r', shard) INTO rows_text;
        copied := copied + coalesce(array_length(rows_text, 1), 0);
        body := body || format('INSERT INTO %s SELECT (r::%s).* FROM unnest(%L::text[]) r; ', shard, t, rows_text);
        counted := counted || format(' + (SELECT count(*) FROM %s)', shard);
    END LOOP;
    -- One statement, so that any error fails it whole and is reported.
    SELECT success, result INTO ok, outcome
      FROM master_run_on_worker(ARRAY[node_name], ARRAY[node_port],
                                ARRAY[format('DO %s BEGIN %s END %s', tag, body, tag)], false);
    IF ok THEN
        SELECT success, result INTO ok, outcome
          FROM master_run_on_worker(ARRAY[node_name], ARRAY[node_port], ARRAY[counted], false);
        ok := ok AND outcome = copied::text;
    END IF;
    IF NOT ok THEN
        RAISE EXCEPTION 'could not rewrite the catalog on %:%: %', node_name, node_port, outcome
            USING ERRCODE = 'external_routine_exception';
    END IF;
    RETURN copied;
END
$$;
REVOKE ALL ON FUNCTION citus_resync_node(text, integer) FROM PUBLIC;
COMMENT ON FUNCTION citus_resync_node(text, integer) IS
    'pg_encrypt_ml: after citus_add_node, rewrites the new worker''s copy of the replicated catalog from the coordinator with roles by name (a binary shard copy carries another node''s role oids); returns the rows written (docs/citus.md)';
