-- Service keys (src/keys/service.rs, docs/formats.md): the extension's own keys (the audit
-- chain's and redaction's HMAC keys), wrapped by the master key like data keys, rewrapped by
-- encml.rotate_master_key(), never deleted. Created on first use.
CREATE TABLE service_keys (
    purpose                text NOT NULL CHECK (purpose IN ('audit-chain', 'audit-redact')),
    version                integer NOT NULL CHECK (version > 0),
    wrapped_key            bytea NOT NULL,
    master_key_fingerprint text NOT NULL,
    -- Imported: equal to what this master key derived for the purpose before 0.2.0.
    derived_from           text,
    created_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (purpose, version)
);
COMMENT ON TABLE service_keys IS
    'pg_encrypt_ml: the extension''s own keys (audit chain, redaction), wrapped by the master key; never deleted';
SELECT pg_catalog.pg_extension_config_dump('service_keys', '');
CREATE FUNCTION service_keys_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_service_keys_guard';
COMMENT ON FUNCTION service_keys_guard() IS 'Trigger refusing DELETE and TRUNCATE of encml.service_keys';
CREATE TRIGGER service_keys_never_deleted BEFORE DELETE ON service_keys
    FOR EACH ROW EXECUTE FUNCTION service_keys_guard();
CREATE TRIGGER service_keys_never_truncated BEFORE TRUNCATE ON service_keys
    FOR EACH STATEMENT EXECUTE FUNCTION service_keys_guard();
