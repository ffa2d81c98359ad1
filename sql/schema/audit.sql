-- Audit log (src/audit/): row changes and security events, chained by a keyed MAC when sealed.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_auditor') THEN
        CREATE ROLE encml_auditor NOLOGIN;
    END IF;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_audit_admin') THEN
        CREATE ROLE encml_audit_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_audit_admin IS 'pg_encrypt_ml: members may purge old audit rows (encml.audit_purge)';
COMMENT ON ROLE encml_auditor IS
    'pg_encrypt_ml: members read the audit log and classifications, verify the chain and read its head';

-- Append-only: rows arrive unsealed (seq, mac NULL) from the audit trigger and the event writer,
-- and a sealing step chains them in commit order. See docs/audit.md for the canonical encoding.
-- Partitioned by whether a row is sealed: writers append to audit_log_unsealed (no index: each
-- audited change pays for one heap insert), sealing moves the rows into audit_log_sealed, which
-- is partitioned by ranges of seq (tables audit_log_s<first seq> that sealing creates as the
-- chain grows, each about a tenth of the rows kept), so that audit_purge drops whole ranges
-- instead of leaving dead rows behind. docs/formats.md has the layout.
CREATE TABLE audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY,  -- unique by its sequence and the MAC
    logged_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    xact_started_at  timestamptz NOT NULL DEFAULT pg_catalog.transaction_timestamp(),
    xact_id          xid8,
    session_role     text NOT NULL DEFAULT pg_catalog."session_user"(),
    effective_role   text NOT NULL,
    client_addr      inet DEFAULT pg_catalog.inet_client_addr(),
    application_name text DEFAULT pg_catalog.current_setting('application_name'),
    tenant           text,
    kind             text NOT NULL,  -- row | event | anchor | checkpoint (no CHECK: a parse per insert)
    operation        text NOT NULL,
    table_oid        oid,
    table_name       text,
    old_row          jsonb,
    new_row          jsonb,
    changed_columns  text[],
    detail           jsonb,
    seq              bigint,
    mac              bytea,
    mac_key          text
) PARTITION BY LIST ((seq IS NULL));
COMMENT ON TABLE audit_log IS
    'pg_encrypt_ml: append-only audit log; seq/mac chain each sealed row to the previous one (HMAC-SHA256 under the audit-chain service key that mac_key names)';
CREATE TABLE audit_log_unsealed PARTITION OF audit_log FOR VALUES IN (true);
COMMENT ON TABLE audit_log_unsealed IS 'pg_encrypt_ml: audit rows not sealed yet (part of encml.audit_log)';
CREATE TABLE audit_log_sealed PARTITION OF audit_log FOR VALUES IN (false) PARTITION BY RANGE (seq);
COMMENT ON TABLE audit_log_sealed IS
    'pg_encrypt_ml: sealed audit rows (part of encml.audit_log), in partitions audit_log_s<first seq> by ranges of seq, each unique on seq';

-- Each seal's head (the last sealed row), so that deleting the newest rows is detected as long
-- as this table is intact; external systems should also record encml.audit_head().
CREATE TABLE audit_witness (
    seq       bigint PRIMARY KEY,
    log_id    bigint NOT NULL,
    mac       bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE audit_witness IS 'pg_encrypt_ml: the audit chain head after each seal';

-- Tables are regclass (not oid) here and in column_classes: pg_dump writes a regclass as the
-- table's name, so a restored database keeps auditing and redacting the same tables.
CREATE TABLE audited_tables (
    table_oid  regclass PRIMARY KEY,
    redact     text[] NOT NULL DEFAULT '{}',
    enabled_by text NOT NULL,
    enabled_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    reads      boolean NOT NULL DEFAULT false  -- statements reading it are logged too (preloaded)
);
COMMENT ON TABLE audited_tables IS 'pg_encrypt_ml: tables audited by encml.audit_enable and their explicitly redacted columns';

-- Column classification (pii, phi, pci, secret, ...), by attribute number so renames keep it.
CREATE TABLE column_classes (
    table_oid regclass NOT NULL,
    attnum    smallint NOT NULL,
    label     text NOT NULL CHECK (label ~ '^[a-z][a-z0-9_]*$'),
    PRIMARY KEY (table_oid, attnum),
    column_name text  -- kept current by renames; a restore finds the column by it
);
COMMENT ON TABLE column_classes IS 'pg_encrypt_ml: sensitivity labels of columns (encml.classify)';

-- A restored table has no dropped columns, so its attribute numbers may differ from the dumped
-- ones: a row that names its column (as pg_dump writes them) takes that column's number. A row
-- without a name (encml.classify) gets the name of its column.
CREATE FUNCTION column_classes_resolve() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_attnum smallint;
BEGIN
    IF NEW.column_name IS NULL THEN
        SELECT a.attname INTO NEW.column_name FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = NEW.table_oid AND a.attnum = NEW.attnum AND NOT a.attisdropped;
    ELSE
        SELECT a.attnum INTO found_attnum FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = NEW.table_oid AND a.attname = NEW.column_name::name
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF found_attnum IS NOT NULL THEN
            NEW.attnum := found_attnum;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER column_classes_resolve BEFORE INSERT OR UPDATE ON column_classes
    FOR EACH ROW EXECUTE FUNCTION column_classes_resolve();

CREATE VIEW classified_columns AS
SELECT c.table_oid::regclass AS table_name, a.attname AS column_name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS data_type, c.label
  FROM column_classes c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped;
COMMENT ON VIEW classified_columns IS 'pg_encrypt_ml: classified columns with their current names and types';

-- Where verification starts: the seq of the latest purge anchor and checkpoint rows, kept here
-- so that they are found without walking the log. Only a shortcut: a row at that seq is used
-- only if it is such a row and its MAC verifies; a missing or wrong marker makes verification
-- walk from further back (and fail if rows were purged), never skip anything.
CREATE TABLE audit_markers (
    kind   text PRIMARY KEY CHECK (kind IN ('anchor', 'checkpoint')),
    seq    bigint NOT NULL,
    log_id bigint NOT NULL
);
COMMENT ON TABLE audit_markers IS 'pg_encrypt_ml: the seq of the latest purge anchor and verification checkpoint in encml.audit_log';

SELECT pg_catalog.pg_extension_config_dump('audit_log_unsealed', '');
SELECT pg_catalog.pg_extension_config_dump('audit_markers', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit_witness', '');
SELECT pg_catalog.pg_extension_config_dump('audited_tables', '');
SELECT pg_catalog.pg_extension_config_dump('column_classes', '');

-- The log only grows: UPDATE, DELETE and TRUNCATE are refused to everyone but the extension's own
-- sealing and purge code, the table owner included (a superuser who disables the triggers is
-- caught by encml.audit_verify). INSERT is granted to nobody; the owner's (a restore's) inserted
-- rows are sealed rows that verify only if their MACs are genuine.
CREATE FUNCTION audit_log_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_log_guard';
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
-- (Statement triggers are not inherited: each partition has its own; sealing gives the range
-- partitions theirs.)
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log_unsealed
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log_sealed
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_witness_append_only BEFORE UPDATE OR DELETE ON audit_witness
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_witness_no_truncate BEFORE TRUNCATE ON audit_witness
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_markers_guard BEFORE UPDATE OR DELETE ON audit_markers
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_markers_no_truncate BEFORE TRUNCATE ON audit_markers
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();

-- Backends cache which relations are audited; a change of audited_tables made by other means
-- than audit_enable (a restore's COPY, the owner's own DML) reaches them through this trigger.
CREATE FUNCTION audited_tables_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audited_tables_changed';
CREATE TRIGGER audited_tables_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON audited_tables
    FOR EACH STATEMENT EXECUTE FUNCTION audited_tables_changed();

-- The trigger encml.audit_enable puts on audited tables (arguments: the columns to redact).
CREATE FUNCTION audit_row_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_row_trigger';
