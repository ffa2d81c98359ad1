-- Tenant context on Citus: encml.set_tenant(tenant, true) inside a transaction block reaches
-- the worker sessions of that transaction as a MACed token (citus.propagate_set_commands =
-- 'local'), so tenant isolation policies and tenant-bound keys behave on the workers as on one
-- node; nothing else becomes a tenant context there.
SHOW citus.propagate_set_commands;
SET client_min_messages = error;
SELECT encml.create_tenant('acme'), encml.create_tenant('globex');
CREATE ROLE citus_app LOGIN;
RESET client_min_messages;
SELECT encml.grant_tenant('acme', 'citus_app');
CREATE TABLE docs (tenant text NOT NULL DEFAULT encml.current_tenant(), id int, body encml.enc_bytea);
SELECT create_distributed_table('docs', 'id', shard_count => 8);
SELECT encml.enable_tenant_isolation('docs', 'tenant');
GRANT SELECT, INSERT ON docs TO citus_app;
-- Each tenant's rows under its own tenant key (created on the coordinator on first use).
BEGIN;
SELECT encml.set_tenant('acme', true);
INSERT INTO docs (id, body) SELECT i, encml.encrypt('acme doc ' || i, encml.tenant_key()) FROM generate_series(1, 40) i;
COMMIT;
BEGIN;
SELECT encml.set_tenant('globex', true);
INSERT INTO docs (id, body) SELECT i, encml.encrypt('globex doc ' || i, encml.tenant_key()) FROM generate_series(41, 100) i;
COMMIT;
SELECT tenant, count(*) FROM docs GROUP BY 1 ORDER BY 1;
SELECT success, result FROM run_command_on_all_nodes($$SELECT count(*) FROM encml.data_keys WHERE tenant IS NOT NULL$$);

SELECT master_key_fingerprint AS fp FROM encml.data_key_versions LIMIT 1 \gset
SET ROLE citus_app;
-- Without a tenant: no rows on any worker.
SELECT count(*) FROM docs;
-- With it: the workers filter by it and decrypt under the tenant's key.
BEGIN;
SELECT encml.set_tenant('acme', true);
SELECT encml.current_tenant();
SELECT tenant, count(*), min(encml.decrypt_text(body)) FROM docs GROUP BY 1;
-- An INSERT fills the tenant column on the worker from the forwarded context.
INSERT INTO docs (id, body) VALUES (1000, encml.encrypt('new', encml.tenant_key()));
SELECT count(*) FROM docs;
COMMIT;
-- The context ends with the transaction, on the coordinator and on the workers.
SELECT count(*) FROM docs;
-- reset_tenant() inside the transaction clears it on the workers too.
BEGIN;
SELECT encml.set_tenant('acme', true);
SELECT count(*) FROM docs;
SELECT encml.reset_tenant();
SELECT count(*) FROM docs;
COMMIT;
-- A tenant the role is not a member of is refused on the coordinator.
BEGIN;
SELECT try($$SELECT encml.set_tenant('globex', true)$$);
ROLLBACK;
-- A plain SET LOCAL is refused, on the coordinator as on a worker.
BEGIN;
SELECT try($$SET LOCAL encml.tenant = 'globex'$$);
ROLLBACK;
-- A crafted token is refused: under an unknown master key, or with a MAC that does not verify.
BEGIN;
SELECT try($$SET LOCAL encml.tenant = 'encml-tenant.v1.Z2xvYmV4.1795502900902838.e1c271999a6c1d65.bCabprzbFvkg6XOh_stdiw'$$);
ROLLBACK;
BEGIN;
SELECT try(format($$SET LOCAL encml.tenant = 'encml-tenant.v1.Z2xvYmV4.%s.%s.bCabprzbFvkg6XOh_stdiw'$$,
                  (extract(epoch FROM now()) * 1000000)::bigint, :'fp'));
ROLLBACK;
-- A session-level tenant does not reach the workers (a warning says so): they see none.
SELECT encml.set_tenant('acme');
SELECT count(*) FROM docs;
SELECT encml.reset_tenant();
RESET ROLE;
-- Sent straight to a worker, neither a tenant name nor a crafted token becomes a context.
SELECT success, result FROM run_command_on_workers($$SET encml.tenant = 'acme'$$);
SELECT success, result FROM run_command_on_workers($$SELECT set_config('encml.tenant', 'acme', false)$$);
SELECT success, result FROM run_command_on_workers(format($$SET encml.tenant = 'encml-tenant.v1.YWNtZQ.%s.%s.bCabprzbFvkg6XOh_stdiw'$$,
    (extract(epoch FROM now()) * 1000000)::bigint, :'fp'));
SELECT catalog_in_sync();

-- Revoking membership and forgetting a tenant (crypto-shredding its keys) reach every node.
SELECT encml.revoke_tenant('acme', 'citus_app');
SELECT encml.forget_tenant('globex') AS keys_destroyed;
SELECT catalog_in_sync();
SET ROLE citus_app;
BEGIN;
SELECT try($$SELECT encml.set_tenant('acme', true)$$);
ROLLBACK;
RESET ROLE;
BEGIN;
SELECT encml.set_tenant('globex', true);
SELECT try($$SELECT count(encml.decrypt_text(body)) FROM docs$$);
ROLLBACK;
