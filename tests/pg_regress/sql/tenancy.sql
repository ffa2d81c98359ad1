-- The tenant context: only set_tenant, after a membership check, can set it; otherwise it
-- behaves like a setting (transaction scope, savepoints, RESET ALL, DISCARD ALL, workers).
CREATE ROLE encml_t_alice NOLOGIN;
CREATE ROLE encml_t_bob NOLOGIN;
CREATE ROLE encml_t_acme_staff NOLOGIN;
GRANT encml_t_acme_staff TO encml_t_alice;
GRANT USAGE ON SCHEMA encml TO encml_t_alice, encml_t_bob;
SELECT encml.create_tenant('acme');
SELECT encml.create_tenant('globex');
SELECT encml.grant_tenant('acme', 'encml_t_acme_staff');
SELECT encml.grant_tenant('globex', 'encml_t_bob');
SELECT try($$SELECT encml.create_tenant('acme')$$);
SELECT try($$SELECT encml.grant_tenant('initech', 'encml_t_bob')$$);

SET ROLE encml_t_alice;
SELECT encml.current_tenant() IS NULL AS unset_at_start, encml.my_tenants();
-- Spoofing attempts: SET, set_config, a foreign tenant, an unknown one, tenant admin functions.
SELECT try($$SET encml.tenant = 'globex'$$);
SELECT try($$SELECT set_config('encml.tenant', 'globex', false)$$);
SELECT try($$SELECT encml.set_tenant('globex')$$);
SELECT try($$SELECT encml.set_tenant('no-such-tenant')$$);
SELECT try($$SELECT encml.grant_tenant('globex', 'encml_t_alice')$$);
SELECT encml.current_tenant() IS NULL AS still_unset;
-- Membership through an inherited group role.
SELECT encml.set_tenant('acme');
SELECT encml.current_tenant();
-- A refused switch leaves the context as it was.
SELECT try($$SELECT encml.set_tenant('globex')$$);
SELECT encml.current_tenant() AS unchanged;
RESET ROLE;

-- Transaction and savepoint scope, is_local, RESET ALL, DISCARD ALL.
SELECT encml.reset_tenant();
BEGIN;
SELECT encml.set_tenant('acme');
ROLLBACK;
SELECT encml.current_tenant() IS NULL AS rolled_back;
BEGIN;
SELECT encml.set_tenant('acme');
SAVEPOINT s;
SELECT encml.set_tenant('globex');
ROLLBACK TO s;
SELECT encml.current_tenant() AS after_savepoint_rollback;
COMMIT;
BEGIN;
SELECT encml.set_tenant('globex', is_local => true);
SELECT encml.current_tenant() AS inside_local;
COMMIT;
SELECT encml.current_tenant() AS after_local;
RESET ALL;
SELECT encml.current_tenant() IS NULL AS after_reset_all;
SELECT encml.set_tenant('acme');
DISCARD ALL;
SELECT encml.current_tenant() IS NULL AS after_discard_all;

-- Per-role and per-database settings of it are refused.
SELECT try($$ALTER ROLE encml_t_bob SET encml.tenant = 'acme'$$);
SELECT try(format('ALTER DATABASE %I SET encml.tenant = %L', current_database(), 'acme'));

-- Parallel workers see the leader's tenant.
SELECT encml.set_tenant('acme');
CREATE TABLE tenant_rows AS SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END AS tenant_id
  FROM generate_series(1, 20000) i;
ANALYZE tenant_rows;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*) FROM tenant_rows WHERE tenant_id = encml.current_tenant();
SELECT count(*) FROM tenant_rows WHERE tenant_id = encml.current_tenant();
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE tenant_rows;

-- A connection option cannot set it either (the value is discarded when the library loads).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('spoof', format('host=%s port=%s dbname=%s user=%s options=-cencml.tenant=globex',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user));
SELECT * FROM dblink('spoof', 'SELECT encml.current_tenant() IS NULL') AS t(unset boolean);
SELECT dblink_disconnect('spoof');

-- Row-level isolation of a shared table.
CREATE TABLE docs (id int PRIMARY KEY, tenant_id text NOT NULL, body text);
CREATE INDEX docs_tenant ON docs (tenant_id, id);
GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO encml_t_alice, encml_t_bob;
SELECT encml.enable_tenant_isolation('docs');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'docs'::regclass;
SELECT encml.grant_tenant('globex', 'encml_t_bob');
SET ROLE encml_t_bob;
SELECT encml.set_tenant('globex');
INSERT INTO docs (id, body) VALUES (1, 'globex plan');
RESET ROLE;
SET ROLE encml_t_alice;
SELECT encml.set_tenant('acme');
INSERT INTO docs (id, body) SELECT i, 'acme doc ' || i FROM generate_series(2, 5) i;   -- tenant filled in
SELECT try($$INSERT INTO docs VALUES (6, 'globex', 'spoofed tenant on insert')$$);
SELECT try($$UPDATE docs SET tenant_id = 'globex' WHERE id = 2$$);
SELECT id, tenant_id, body FROM docs ORDER BY id;
SELECT count(*) AS globex_rows_visible FROM docs WHERE tenant_id = 'globex';
UPDATE docs SET body = 'touched' WHERE id = 1;          -- another tenant's row: nothing happens
DELETE FROM docs WHERE id = 1;
-- A view without security_barrier and a leaky function do not get around the policy.
CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
$$BEGIN RAISE NOTICE 'saw %', $1; RETURN true; END$$;
SELECT count(*) FROM docs WHERE pg_temp.leak(body) AND tenant_id = 'acme';
SELECT encml.reset_tenant();
SELECT count(*) AS visible_without_tenant FROM docs;
SELECT try($$INSERT INTO docs (id, body) VALUES (7, 'no tenant')$$);
RESET ROLE;
SELECT tenant_id, count(*) FROM docs GROUP BY 1 ORDER BY 1;   -- the superuser bypasses RLS
-- The policy keeps index use: current_tenant() is STABLE, so the tenant filter can be an index
-- condition on (tenant_id, id).
SET ROLE encml_t_alice;
SELECT encml.set_tenant('acme');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT body FROM docs WHERE id BETWEEN 2 AND 3;
SELECT body FROM docs WHERE id BETWEEN 2 AND 3 ORDER BY id;
RESET enable_seqscan;
SELECT encml.reset_tenant();
RESET ROLE;
SELECT encml.disable_tenant_isolation('docs');
SELECT relrowsecurity, relforcerowsecurity, pg_get_expr(adbin, adrelid) AS tenant_default
  FROM pg_class LEFT JOIN pg_attrdef ON adrelid = pg_class.oid WHERE pg_class.oid = 'docs'::regclass;
SELECT try($$SELECT encml.enable_tenant_isolation('docs', 'no_such_column')$$);
SELECT try($$SELECT encml.enable_tenant_isolation('docs', 'id')$$);
SET ROLE encml_t_alice;
SELECT try($$SELECT encml.enable_tenant_isolation('docs')$$);
RESET ROLE;
DROP TABLE docs;

-- Keys bound to a tenant: usable only while that tenant is current (superusers and tenant admins
-- excepted), checked at every encryption and decryption, whichever row the value sits in.
SET ROLE encml_t_alice;
SELECT encml.set_tenant('acme');
SELECT encml.create_key('acme-pii', 'aead', 'acme') AS ka \gset
SELECT try($$SELECT encml.create_key('globex-pii', 'aead', 'globex')$$);
CREATE TABLE pg_temp.stolen AS SELECT encml.encrypt('acme secret', :'ka') AS v;
GRANT SELECT ON pg_temp.stolen TO PUBLIC;
SELECT encml.decrypt_text(v) AS while_acme FROM pg_temp.stolen;
SELECT encml.reset_tenant();
SELECT replace(try($$SELECT encml.decrypt_text(v) FROM pg_temp.stolen$$), :'ka', '<ka>') AS no_tenant;
SELECT replace(try(format('SELECT encml.encrypt(%L, %L)', 'x', :'ka')), :'ka', '<ka>') AS encrypt_no_tenant;
RESET ROLE;
SELECT encml.decrypt(v) IS NOT NULL AS superuser_may FROM pg_temp.stolen;
SELECT encml.reset_tenant();
SET ROLE encml_t_bob;
SELECT encml.set_tenant('globex');
-- Another tenant's ciphertext copied into bob's own table does not decrypt.
CREATE TABLE pg_temp.mine AS SELECT v FROM pg_temp.stolen;
SELECT replace(try($$SELECT encml.decrypt_text(v) FROM pg_temp.mine$$), :'ka', '<ka>') AS foreign_key;
SELECT encml.reset_tenant();
RESET ROLE;
DROP TABLE pg_temp.stolen, pg_temp.mine;

-- Dropping a tenant drops its memberships.
SELECT encml.drop_tenant('globex');
SELECT try($$SELECT encml.drop_tenant('globex')$$);
SELECT encml.reset_tenant();
DROP OWNED BY encml_t_alice, encml_t_bob, encml_t_acme_staff;
DROP ROLE encml_t_alice, encml_t_bob, encml_t_acme_staff;
SELECT encml.drop_tenant('acme');
