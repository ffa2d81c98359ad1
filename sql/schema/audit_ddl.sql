-- DDL on audited tables (src/audit/ddl.rs): event triggers, which need no preloading. ENABLE
-- ALWAYS, so that session_replication_role = replica does not switch them off; a superuser who
-- disables or drops one is caught by encml.audit_verify and encml.compliance_report.
CREATE FUNCTION audit_ddl_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_ddl_start';
CREATE FUNCTION audit_ddl_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_ddl_end';
CREATE FUNCTION audit_sql_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_sql_drop';
CREATE FUNCTION audit_table_rewrite() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_table_rewrite';
COMMENT ON FUNCTION audit_ddl_start() IS
    'Event trigger function (ddl_command_start): notes the audited tables and audit triggers a DROP statement may remove, and logs a DETACH PARTITION ... CONCURRENTLY of an audited table''s partition before its first transaction commits';
COMMENT ON FUNCTION audit_ddl_end() IS
    'Event trigger function (ddl_command_end): logs DDL on audited tables, audits tables that join them, refuses weakening their audit triggers';
COMMENT ON FUNCTION audit_sql_drop() IS
    'Event trigger function (sql_drop): logs dropped audited tables and tables under them, refuses dropping audit triggers';
COMMENT ON FUNCTION audit_table_rewrite() IS
    'Event trigger function (table_rewrite): logs rewrites of audited tables';
-- Only starting DROP statements matter (the others are seen when they end), but of every kind:
-- DROP TYPE, FUNCTION, SCHEMA ... CASCADE can take columns and triggers of audited tables along.
CREATE EVENT TRIGGER encml_audit_ddl_start ON ddl_command_start EXECUTE FUNCTION audit_ddl_start();
CREATE EVENT TRIGGER encml_audit_ddl_end ON ddl_command_end EXECUTE FUNCTION audit_ddl_end();
CREATE EVENT TRIGGER encml_audit_sql_drop ON sql_drop EXECUTE FUNCTION audit_sql_drop();
CREATE EVENT TRIGGER encml_audit_table_rewrite ON table_rewrite EXECUTE FUNCTION audit_table_rewrite();
ALTER EVENT TRIGGER encml_audit_ddl_start ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_sql_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_table_rewrite ENABLE ALWAYS;
