-- A role the extension grants something to (a key grant, a clearance, a tenant membership, a
-- privacy budget) is not dropped while it holds it, as Postgres keeps a role that holds
-- privileges; DROP OWNED BY removes them. A dropped role's rows kept its oid, which a role
-- created later can get, and with it the dropped role's keys (issue 27).
CREATE ROLE encml_rd_gone;
SELECT encml.create_key('rd-key') AS rd_key \gset
SELECT encml.grant_key(:'rd_key', 'encml_rd_gone', 'decrypt');
SELECT regexp_replace(try('DROP ROLE encml_rd_gone'), 'encml_regress\w*', 'DB') AS key_grant_holds;
SELECT encml.revoke_key(:'rd_key', 'encml_rd_gone', 'decrypt');
SELECT encml.grant_clearance('encml_rd_gone', 'rd_label');
SELECT encml.create_tenant('rd-tenant');
SELECT encml.grant_tenant('rd-tenant', 'encml_rd_gone');
SELECT encml.set_privacy_budget('encml_rd_gone', 1.0);
SELECT regexp_replace(try('DROP ROLE encml_rd_gone'), 'encml_regress\w*', 'DB') AS three_hold;
-- A role that may not drop roles learns nothing of what others hold: Postgres refuses it first.
CREATE ROLE encml_rd_nosy;
SET ROLE encml_rd_nosy;
SELECT try('DROP ROLE encml_rd_gone') AS not_allowed;
RESET ROLE;
DROP ROLE encml_rd_nosy;
-- Roles named in one statement are checked before anything is dropped.
CREATE ROLE encml_rd_free;
SELECT try('DROP ROLE encml_rd_free, encml_rd_gone') ~ '^2BP01' AS none_dropped;
SELECT count(*) AS free_still_there FROM pg_roles WHERE rolname = 'encml_rd_free';
-- DROP OWNED BY removes them (and records it), then the role can go; nothing is left under its oid.
SELECT oid AS gone_oid FROM pg_roles WHERE rolname = 'encml_rd_gone' \gset
SELECT max(id) AS before_drop FROM encml.audit_log \gset
DROP OWNED BY encml_rd_gone;
SELECT detail->'removed' AS removed FROM encml.audit_log WHERE id > :before_drop AND operation = 'drop_owned_privileges';
DROP ROLE encml_rd_gone, encml_rd_free;
SELECT (SELECT count(*) FROM encml.key_grants WHERE grantee::oid = :gone_oid)
     + (SELECT count(*) FROM encml.clearances WHERE grantee::oid = :gone_oid)
     + (SELECT count(*) FROM encml.tenant_members WHERE member::oid = :gone_oid)
     + (SELECT count(*) FROM encml.privacy_budgets WHERE analyst::oid = :gone_oid) AS left_under_oid;
