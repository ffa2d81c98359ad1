-- Auditing a distributed table: the row trigger runs on the shards (Citus creates triggers on
-- distributed tables only with citus.enable_unsafe_triggers), each change lands in the audit
-- log of the node that holds the shard, and audit_verify checks each node's chain.
CREATE TABLE accounts (id int, email text, balance int);
SELECT create_distributed_table('accounts', 'id', shard_count => 4);
SELECT try($$SELECT encml.audit_enable('accounts', '{email}')$$) AS without_unsafe_triggers;
SET citus.enable_unsafe_triggers = on;
SELECT encml.audit_enable('accounts', '{email}');
RESET citus.enable_unsafe_triggers;
INSERT INTO accounts SELECT i, 'user' || i || '@example.com', 100 FROM generate_series(1, 20) i;
UPDATE accounts SET balance = balance + 1 WHERE id <= 5;
DELETE FROM accounts WHERE id = 20;
-- 20 inserts, 5 updates, 1 delete, spread over the workers' logs.
SELECT sum(result::int) AS row_changes_logged
  FROM run_command_on_workers($$SELECT count(*) FROM encml.audit_log WHERE kind = 'row' AND table_name LIKE '%accounts%'$$);
-- The email is redacted in every log.
SELECT bool_and(result::int = 0) AS no_plain_email
  FROM run_command_on_workers($$SELECT count(*) FROM encml.audit_log WHERE detail::text LIKE '%@example.com%'$$);
-- Each node's chain verifies.
SELECT nodeid, success, result FROM run_command_on_all_nodes($$SELECT ok FROM encml.audit_verify()$$) ORDER BY nodeid;
