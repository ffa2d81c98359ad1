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
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'CREATE EXTENSION citus first (docs/citus.md).';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT extowner FROM pg_extension WHERE extname = 'pg_encrypt_ml'), 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of pg_encrypt_ml may run citus_setup'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT groupid FROM pg_dist_local_group) <> 0 THEN
        RAISE EXCEPTION 'encml.citus_setup() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
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
