-- GDPR data-subject rights (src/api/subjects/, src/api/consent.rs, docs/gdpr.md): where each
-- subject's rows are, the subject's own keys, and consent with its history. Written only through
-- the functions; readable by nobody but the extension owner (views below for the roles).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_subject_processor') THEN
        CREATE ROLE encml_subject_processor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_dpo') THEN
        CREATE ROLE encml_dpo NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_subject_processor IS
    'pg_encrypt_ml: members may get per-subject keys (subject_key), encrypt and decrypt with them, and record consent';
COMMENT ON ROLE encml_dpo IS
    'pg_encrypt_ml: data protection officers: members may erase data subjects (subject_forget) and read all consent history';

-- Where a subject's identifier lives (encml.register_subject_column, the table's owner).
CREATE TABLE subject_columns (
    tbl           regclass NOT NULL,
    col           name NOT NULL,
    -- How the subject's id is stored: as is ('plain'), det_text under id_key ('det_text'), or
    -- FF1-tokenized under id_key over id_alphabet ('fpe').
    id_kind       text NOT NULL CHECK (id_kind IN ('plain', 'det_text', 'fpe')),
    id_key        uuid,
    id_alphabet   text,
    on_forget     text NOT NULL CHECK (on_forget IN ('delete', 'anonymize')),
    registered_by regrole NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, col),
    CHECK ((id_kind = 'plain') = (id_key IS NULL)),
    CHECK ((id_kind = 'fpe') = (id_alphabet IS NOT NULL)),
    -- The column's number: what identifies it (a column dropped and added again under the same
    -- name is another column); col is kept current by renames, and a restore finds it by col.
    attnum        smallint
);
COMMENT ON TABLE subject_columns IS 'pg_encrypt_ml: columns holding a data subject''s identifier (register_subject_column)';

-- A registration names its column (as pg_dump writes it): it takes that column's number. A
-- restored table has no dropped columns, so its numbers may differ from the dumped ones.
CREATE FUNCTION subject_columns_resolve() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.attnum := (SELECT a.attnum FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = NEW.tbl AND a.attname = NEW.col
                      AND a.attnum > 0 AND NOT a.attisdropped);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subject_columns_resolve() IS
    'pg_encrypt_ml: gives a registration of a subject-identifier column (a new one, or one restored by pg_restore) the number of the column it names';
CREATE TRIGGER subject_columns_resolve BEFORE INSERT ON subject_columns
    FOR EACH ROW EXECUTE FUNCTION subject_columns_resolve();

-- The per-subject keys of encml.subject_key(): shredded by encml.subject_forget(). No foreign
-- key to data_keys (whose rows are never deleted): on Citus, data_keys becomes a reference table
-- and a referencing local table would be converted with it (encml.citus_setup()).
CREATE TABLE subject_keys (
    subject    text NOT NULL,
    purpose    text NOT NULL,
    key_id     uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, purpose)
);
COMMENT ON TABLE subject_keys IS 'pg_encrypt_ml: each data subject''s own keys (subject_key), destroyed by subject_forget';

-- Every consent decision, never updated: the latest row per (subject, purpose) is in force.
CREATE TABLE consents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     text NOT NULL CHECK (subject <> ''),
    purpose     text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]*$'),
    granted     boolean NOT NULL,
    source      text,
    recorded_by regrole NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX consents_subject ON consents (subject, purpose, id);
CREATE INDEX consents_purpose ON consents (purpose, subject, id);
COMMENT ON TABLE consents IS 'pg_encrypt_ml: consent history (record_consent); the latest decision per subject and purpose holds';

REVOKE ALL ON subject_columns, subject_keys, consents FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('subject_columns', '');
SELECT pg_catalog.pg_extension_config_dump('subject_keys', '');
SELECT pg_catalog.pg_extension_config_dump('consents', '');
SELECT pg_catalog.pg_extension_config_dump('consents_id_seq', '');

CREATE VIEW subject_registry WITH (security_barrier) AS
SELECT s.tbl, s.col, s.id_kind, s.id_key, s.on_forget, s.registered_by, s.registered_at
  FROM subject_columns s;
COMMENT ON VIEW subject_registry IS
    'pg_encrypt_ml: the registered subject-identifier columns and what subject_forget does to their rows';
GRANT SELECT ON subject_registry TO PUBLIC;

CREATE VIEW consent_history WITH (security_barrier) AS
SELECT c.id, c.subject, c.purpose, c.granted, c.source, c.recorded_by, c.recorded_at
  FROM consents c
 WHERE pg_catalog.pg_has_role(current_user, 'encml_dpo', 'USAGE')
    OR pg_catalog.pg_has_role(current_user, 'encml_subject_processor', 'USAGE');
COMMENT ON VIEW consent_history IS
    'pg_encrypt_ml: every consent decision with who recorded it, when and from which source (DPOs and subject processors)';
GRANT SELECT ON consent_history TO PUBLIC;

-- A dropped table takes its registrations and masking rules with it (a later table could get
-- the same oid). Runs as the extension owner: the catalog tables are closed to the dropper.
CREATE FUNCTION forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped oid[];
BEGIN
    IF to_regclass('encml.subject_columns') IS NULL THEN
        RETURN;  -- the extension itself is being dropped
    END IF;
    SELECT array_agg(d.objid) INTO dropped FROM pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
    -- Write only when a registered table went (most drops are of other tables).
    IF EXISTS (SELECT FROM encml.subject_columns s WHERE s.tbl::oid = ANY (dropped)) THEN
        DELETE FROM encml.subject_columns s WHERE s.tbl::oid = ANY (dropped);
    END IF;
    IF EXISTS (SELECT FROM encml.masking_rules m WHERE m.tbl::oid = ANY (dropped)) THEN
        DELETE FROM encml.masking_rules m WHERE m.tbl::oid = ANY (dropped);
    END IF;
END
$$;
COMMENT ON FUNCTION forget_dropped_tables() IS
    'pg_encrypt_ml: event trigger function: removes the subject registrations and masking rules of dropped tables';
CREATE EVENT TRIGGER encml_forget_dropped_tables ON sql_drop EXECUTE FUNCTION forget_dropped_tables();
-- Also in replica mode (encml.audit_state() checks it).
ALTER EVENT TRIGGER encml_forget_dropped_tables ENABLE ALWAYS;
