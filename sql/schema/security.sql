-- Threat detection and monitoring (docs/monitoring.md): the security events of the audit log
-- with their severity, and a summary. Both are invoker-rights: reading them needs SELECT on the
-- audit log (encml_auditor) or encml_security_admin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_security_admin') THEN
        CREATE ROLE encml_security_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_security_admin IS
    'pg_encrypt_ml: members read security events, failed logins and metrics, and end login lockouts (encml.unlock)';

-- Roles marked as services (encml.mark_tls_service_role): compliance_report() requires every
-- pg_hba.conf line that admits them from the network to ask for a verified client certificate.
CREATE TABLE tls_service_roles (
    role regrole PRIMARY KEY,
    marked_by regrole NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tls_service_roles IS
    'pg_encrypt_ml: roles marked as services, which must connect with a verified client certificate (encml.mark_tls_service_role)';
REVOKE ALL ON tls_service_roles FROM PUBLIC;
GRANT SELECT ON tls_service_roles TO encml_security_admin, encml_auditor;
SELECT pg_catalog.pg_extension_config_dump('tls_service_roles', '');

CREATE VIEW security_events AS
SELECT id, logged_at,
       coalesce(detail->>'severity', 'info') AS severity,
       operation AS kind,
       session_role, effective_role, client_addr, application_name, tenant, table_name,
       detail
  FROM audit_log
 WHERE kind = 'event';
COMMENT ON VIEW security_events IS
    'pg_encrypt_ml: security events of the audit log (refusals, grants, role changes, lockouts, alerts) with severity critical, warning or info';
GRANT SELECT ON security_events TO encml_auditor, encml_security_admin;

CREATE FUNCTION security_summary(since interval DEFAULT '24 hours')
RETURNS TABLE (severity text, kind text, events bigint, first_seen timestamptz, last_seen timestamptz)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Events raised before a database was connected (failed logins) join the log first.
    PERFORM encml.forward_security_events();
    RETURN QUERY
        SELECT e.severity, e.kind, count(*), min(e.logged_at), max(e.logged_at)
          FROM encml.security_events e
         WHERE e.logged_at >= pg_catalog.clock_timestamp() - since
         GROUP BY e.severity, e.kind
         ORDER BY CASE e.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                  count(*) DESC, e.kind;
END
$$;
