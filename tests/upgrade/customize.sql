-- What an administrator may change on the extension's own objects, applied to the fresh install
-- and to the old one before it is filled: an upgrade must carry it over (and keep it out of the
-- initial privileges, so that pg_dump still dumps it).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_up_reader') THEN
        CREATE ROLE encml_up_reader NOLOGIN;
    END IF;
END
$$;
-- A view the upgrade to 0.2.0 drops and creates again.
GRANT SELECT ON encml.classified_columns TO encml_up_reader;
