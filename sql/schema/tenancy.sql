-- RLS helpers for a shared table with a tenant column. Invoker rights: only a role that may
-- ALTER the table (its owner) can enable or disable isolation on it.

CREATE FUNCTION enable_tenant_isolation(tbl regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col_type regtype;
BEGIN
    IF tbl IS NULL OR tenant_column IS NULL THEN
        RAISE EXCEPTION 'table and tenant column must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT a.atttypid::regtype INTO col_type FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF col_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', tenant_column, tbl USING ERRCODE = '42703';
    END IF;
    IF col_type NOT IN ('text'::regtype, 'character varying'::regtype) THEN
        RAISE EXCEPTION 'tenant column "%" of % must be text or varchar, not %', tenant_column, tbl, col_type
            USING ERRCODE = '42804';
    END IF;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT encml.current_tenant()', tbl, tenant_column);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    IF EXISTS (SELECT FROM pg_policy WHERE polrelid = tbl AND polname = 'encml_tenant_isolation') THEN
        EXECUTE format('DROP POLICY encml_tenant_isolation ON %s', tbl);
    END IF;
    -- Rows are visible and writable only where the column is the current tenant; with no tenant
    -- set, NULL = x is never true, so nothing is visible and nothing can be written.
    EXECUTE format('CREATE POLICY encml_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
                   'USING (%I = encml.current_tenant()) WITH CHECK (%I = encml.current_tenant())',
                   tbl, tenant_column, tenant_column);
END
$$;

CREATE FUNCTION disable_tenant_isolation(tbl regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_policy WHERE polrelid = tbl AND polname = 'encml_tenant_isolation') THEN
        EXECUTE format('DROP POLICY encml_tenant_isolation ON %s', tbl);
    END IF;
    EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    IF (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a
          ON a.attrelid = d.adrelid AND a.attnum = d.adnum
         WHERE d.adrelid = tbl AND a.attname = tenant_column) = 'encml.current_tenant()' THEN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', tbl, tenant_column);
    END IF;
END
$$;

COMMENT ON FUNCTION enable_tenant_isolation(regclass, name) IS
    'Enables and forces row-level security on a table so that rows are visible and writable only where the tenant column equals encml.current_tenant(); fills the column on INSERT';
COMMENT ON FUNCTION disable_tenant_isolation(regclass, name) IS
    'Removes what enable_tenant_isolation added';
