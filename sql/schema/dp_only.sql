-- DP-only tables (docs/privacy.md, "DP-only tables"): src/api/dp_protect.rs and the planner
-- hook of src/privacy/dp_only.rs. One row per protected table; the privacy unit by column name
-- (a restored dump renumbers columns).
CREATE TABLE dp_protected_tables (
    table_oid regclass PRIMARY KEY,
    privacy_unit name NOT NULL,
    max_rows_per_unit integer NOT NULL CHECK (max_rows_per_unit > 0),
    enabled_row_security boolean NOT NULL,
    forced_row_security boolean NOT NULL,
    protected_by name NOT NULL,
    protected_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE dp_protected_tables IS
    'pg_encrypt_ml: DP-only tables (dp_protect): read by other roles only through dp aggregates bounded by the privacy unit; whether dp_protect enabled or forced row-level security (dp_unprotect restores it)';
REVOKE ALL ON dp_protected_tables FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dp_protected_tables', '');
CREATE VIEW dp_protected AS
SELECT table_oid, privacy_unit, max_rows_per_unit, protected_by, protected_at FROM dp_protected_tables;
COMMENT ON VIEW dp_protected IS
    'pg_encrypt_ml: the DP-only tables, their privacy unit and the most rows one unit may contribute';
GRANT SELECT ON dp_protected TO PUBLIC;
