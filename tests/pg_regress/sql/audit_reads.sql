-- Read auditing (library preloaded): audit_enable(tbl, reads => true) logs one chained event per
-- statement and table read, with the command, the query's fingerprint (query id) and the rows
-- returned, never the query text. A read whose transaction or savepoint rolls back is written
-- again by the session's next statement; a read-only transaction's goes through the background
-- writer. Tables not read-audited and EXPLAIN without ANALYZE are not logged.
CREATE ROLE encml_r_owner NOLOGIN;
CREATE ROLE encml_r_reader NOLOGIN;
GRANT CREATE ON SCHEMA public TO encml_r_owner;
SET ROLE encml_r_owner;
CREATE TABLE public.r_t (id int, secret text);
INSERT INTO public.r_t SELECT i, 'v' || i FROM generate_series(1, 10) i;
CREATE TABLE public.r_plain (id int);
CREATE TABLE public.r_part (id int) PARTITION BY RANGE (id);
CREATE TABLE public.r_part1 PARTITION OF public.r_part FOR VALUES FROM (0) TO (100);
INSERT INTO public.r_part VALUES (1), (2);
GRANT SELECT ON public.r_t, public.r_plain, public.r_part, public.r_part1 TO encml_r_reader;
SELECT encml.audit_enable('public.r_t', reads => true);
SELECT encml.audit_enable('public.r_part', reads => true);
SELECT encml.audit_enable('public.r_plain');
RESET ROLE;
SELECT reads FROM encml.audited_tables WHERE table_oid = 'public.r_t'::regclass;
SELECT max(id) AS b FROM encml.audit_log \gset

SET ROLE encml_r_reader;
SELECT count(*) FROM public.r_t WHERE secret = 'v3';
SELECT id FROM public.r_t WHERE id <= 4 ORDER BY id;
SELECT count(*) FROM public.r_plain;
EXPLAIN (COSTS OFF) SELECT * FROM public.r_t;
SELECT count(*) FROM public.r_part1;
SELECT count(*) FROM public.r_t a JOIN public.r_part b USING (id);
BEGIN;
SELECT count(*) AS rolled_back FROM public.r_t;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT count(*) AS in_savepoint FROM public.r_t WHERE id > 5;
ROLLBACK TO s;
COMMIT;
BEGIN READ ONLY;
SELECT id AS read_only FROM public.r_t WHERE id = 1;
COMMIT;
COPY public.r_t (id) TO STDOUT;
RESET ROLE;
SELECT 1 AS next_statement;

SELECT operation, effective_role, table_name, detail->>'table' AS read_through, detail->>'command' AS command,
       detail->>'rows' AS rows, detail->>'query_id' ~ '^-?[0-9]+$' AS fingerprinted,
       detail::text ~ 'v3' AS literal_logged
  FROM encml.audit_log WHERE id > :b AND operation = 'read' ORDER BY id;
SELECT ok FROM encml.audit_verify();

-- Found by an attacker: reads that never reached the executor's end. A statement that sends
-- rows and then fails, and a cursor whose transaction rolls back, are recorded (rows unknown)
-- by the next statement; a savepoint's rolled-back read is written when the transaction commits.
SELECT max(id) AS b2 FROM encml.audit_log \gset
SET ROLE encml_r_reader;
SELECT try($$SELECT 1 / (10 - id) FROM public.r_t$$) AS fails_after_rows;
BEGIN;
DECLARE c CURSOR FOR SELECT * FROM public.r_t;
FETCH 2 FROM c;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT count(*) AS in_savepoint FROM public.r_t;
ROLLBACK TO s;
COMMIT;
SELECT 1 AS next_statement;
RESET ROLE;
SELECT detail->>'command' AS command, detail->>'rows' AS rows, detail ? 'ended' AS failed_before_end
  FROM encml.audit_log WHERE id > :b2 AND operation = 'read' ORDER BY id;
-- The extension's own counting of rows (a table joining a read-audited tree) is not a read.
SELECT max(id) AS b3 FROM encml.audit_log \gset
SET ROLE encml_r_owner;
CREATE TABLE public.r_part2 PARTITION OF public.r_part FOR VALUES FROM (100) TO (200);
RESET ROLE;
SELECT count(*) AS reads_by_the_extension FROM encml.audit_log WHERE id > :b3 AND operation = 'read';
-- Sealing does not take a lock that any role could hold (an advisory lock stalled every seal).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('holder', format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user));
SELECT * FROM dblink('holder', 'SELECT pg_advisory_lock(1701733229, 1936023916)') AS t(x text);
SET lock_timeout = '5s';
SELECT encml.audit_seal() >= 0 AS sealed_while_the_old_lock_is_held;
RESET lock_timeout;
-- ... nor one that conflicts with what any role holds by naming the log's tables in a statement
-- it may not run (parse analysis locks before the privilege check): idle PREPAREs.
-- (Enough sealed rows for several ranges of the log, so that a purge has whole ones to drop.)
SET ROLE encml_r_owner;
INSERT INTO public.r_plain SELECT generate_series(1, 12000);
DELETE FROM public.r_plain WHERE id > 0;
RESET ROLE;
SELECT encml.audit_seal() > 0 AS sealed;
SELECT count(*) >= 2 AS several_ranges FROM pg_inherits WHERE inhparent = 'encml.audit_log_sealed'::regclass;
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'PREPARE w AS DELETE FROM encml.audit_witness');
SELECT dblink_exec('holder', 'PREPARE s AS SELECT * FROM encml.audit_log_sealed');
SET lock_timeout = '5s';
SELECT encml.audit_seal() >= 0 AS sealed_while_prepared;
SELECT ok FROM encml.audit_verify();
-- (Purging then deletes the rows of the ranges it cannot drop now; a later purge drops them.)
SELECT count(*) AS ranges_before FROM pg_inherits WHERE inhparent = 'encml.audit_log_sealed'::regclass \gset
SELECT encml.audit_purge(clock_timestamp()) > 0 AS purged_while_prepared;
SELECT count(*) = :ranges_before AS ranges_kept FROM pg_inherits WHERE inhparent = 'encml.audit_log_sealed'::regclass;
SELECT ok FROM encml.audit_verify_full();
RESET lock_timeout;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT encml.audit_purge(clock_timestamp()) >= 0 AS purged;
SELECT count(*) < :ranges_before AS ranges_dropped_later FROM pg_inherits WHERE inhparent = 'encml.audit_log_sealed'::regclass;
SELECT ok FROM encml.audit_verify_full();
SELECT dblink_disconnect('holder');

-- Reading through a parent of the reader's own: the owner makes the audited table inherit from a
-- new table and reads that (an attacker's find: the children the planner adds carry no
-- permissions, which the hook looked for).
SELECT max(id) AS b4 FROM encml.audit_log \gset
SET ROLE encml_r_owner;
CREATE TABLE public.r_parent (id int, secret text);
ALTER TABLE public.r_t INHERIT public.r_parent;
SELECT count(*) FROM public.r_parent WHERE secret = 'v3';
RESET ROLE;
SELECT detail->>'command' AS command, table_name, detail->>'rows' AS read_rows
  FROM encml.audit_log WHERE id > :b4 AND kind = 'event' AND operation = 'read' ORDER BY id;
SET ROLE encml_r_owner;
ALTER TABLE public.r_t NO INHERIT public.r_parent;
DROP TABLE public.r_parent;
RESET ROLE;

-- A change of encml.audited_tables by other means than audit_enable (a restore's COPY, the
-- owner's DML) reaches the backends' cache of audited relations at once.
SELECT count(*) FROM public.r_plain;
SELECT max(id) AS b5 FROM encml.audit_log \gset
UPDATE encml.audited_tables SET reads = true WHERE table_oid = 'public.r_plain'::regclass;
SELECT count(*) FROM public.r_plain;
SELECT count(*) AS read_logged FROM encml.audit_log WHERE id > :b5 AND operation = 'read' AND table_name = 'public.r_plain';
UPDATE encml.audited_tables SET reads = false WHERE table_oid = 'public.r_plain'::regclass;
SELECT max(id) AS b6 FROM encml.audit_log \gset
SELECT count(*) FROM public.r_plain;
SELECT count(*) AS read_logged FROM encml.audit_log WHERE id > :b6 AND operation = 'read';

-- UPDATE and DELETE scan the table: they are reads too, WHERE clause or not (an attacker's find:
-- a writer without a WHERE clause saw a row in a NOT NULL violation's DETAIL, and the owner's
-- BEFORE trigger saw every row, with no event).
GRANT UPDATE, DELETE ON public.r_t TO encml_r_reader;
SET ROLE encml_r_owner;
CREATE FUNCTION public.r_peek() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'peek %', old.secret; RETURN NULL; END $$;
CREATE TRIGGER a_peek BEFORE UPDATE ON public.r_t FOR EACH ROW WHEN (old.id = 3) EXECUTE FUNCTION public.r_peek();
ALTER TABLE public.r_t ALTER COLUMN id SET NOT NULL;
RESET ROLE;
SELECT max(id) AS b7 FROM encml.audit_log \gset
SET ROLE encml_r_reader;
\set VERBOSITY terse
UPDATE public.r_t SET id = NULL;
\set VERBOSITY default
UPDATE public.r_t SET secret = secret;
DELETE FROM public.r_t WHERE false;
RESET ROLE;
INSERT INTO public.r_t VALUES (11, 'v11');
SELECT detail->>'command' AS command, table_name, detail->>'rows' AS read_rows
  FROM encml.audit_log WHERE id > :b7 AND kind = 'event' AND operation = 'read' ORDER BY id;

-- Maintenance evaluates the owner's expressions over the rows, and its errors show them (an
-- attacker's find: a failing ALTER COLUMN ... TYPE ... USING, CREATE INDEX or ADD CONSTRAINT
-- printed a row's value, and left no event since the statement rolled back). Recorded before
-- it runs, kept when it fails; ANALYZE and VACUUM FULL too. A plain VACUUM is not a read.
SELECT max(id) AS b8 FROM encml.audit_log \gset
SET ROLE encml_r_owner;
\set VERBOSITY terse
ALTER TABLE public.r_t ALTER COLUMN secret TYPE int USING (CASE WHEN id = 5 THEN 'x' || secret ELSE '0' END)::int;
CREATE INDEX r_leak ON public.r_t ((('y' || secret)::int)) WHERE id = 7;
ALTER TABLE public.r_t ADD CONSTRAINT r_leak CHECK (CASE WHEN id = 9 THEN ('z' || secret)::int ELSE 0 END = 0);
\set VERBOSITY default
ANALYZE public.r_t;
VACUUM public.r_t;
VACUUM (FULL) public.r_t;
SELECT 1 AS next_statement;
RESET ROLE;
-- (Ordered by command: the failed statements' records are written by the background writer.)
SELECT detail->>'command' AS command, table_name, detail->>'rows' AS read_rows
  FROM encml.audit_log WHERE id > :b8 AND kind = 'event' AND operation = 'read' ORDER BY 1;

-- ... also through a parent of the owner's own, and where Postgres scans the table for another
-- object: a new partition checks the default partition's rows, a domain constraint every column
-- of the domain (an attacker's find: a failing CREATE TABLE ... PARTITION OF told, value by
-- value, whether the audited default partition held it, with no event).
SET ROLE encml_r_owner;
CREATE TABLE public.r_pp (id int, secret text) PARTITION BY RANGE (secret);
ALTER TABLE public.r_pp ATTACH PARTITION public.r_t DEFAULT;
RESET ROLE;
SELECT max(id) AS b10 FROM encml.audit_log \gset
SET ROLE encml_r_owner;
\set VERBOSITY terse
CREATE TABLE public.r_probe PARTITION OF public.r_pp FOR VALUES FROM ('v5') TO ('v5~');
CREATE INDEX r_leak2 ON public.r_pp ((('y' || secret)::int));
\set VERBOSITY default
ANALYZE public.r_pp;
ALTER TABLE public.r_pp DETACH PARTITION public.r_t;
DROP TABLE public.r_pp;
CREATE DOMAIN public.r_dom AS text;
ALTER TABLE public.r_t ALTER COLUMN secret TYPE public.r_dom;
\set VERBOSITY terse
ALTER DOMAIN public.r_dom ADD CONSTRAINT r_guess CHECK (VALUE <> 'v4');
\set VERBOSITY default
ALTER TABLE public.r_t ALTER COLUMN secret TYPE text;
DROP DOMAIN public.r_dom;
SELECT 1 AS next_statement;
RESET ROLE;
SELECT detail->>'command' AS command, table_name, detail->>'table' AS read_through
  FROM encml.audit_log WHERE id > :b10 AND kind = 'event' AND operation = 'read' ORDER BY 1, 3;

-- Attaching the audited table itself checks its rows against the bound (an attacker's find:
-- ATTACH ... FOR VALUES in a rolled-back transaction was an oracle on the values, with no event).
SET ROLE encml_r_owner;
CREATE TABLE public.r_pp3 (id int, secret text) PARTITION BY RANGE (secret);
RESET ROLE;
SELECT max(id) AS b11 FROM encml.audit_log \gset
SET ROLE encml_r_owner;
BEGIN;
\set VERBOSITY terse
ALTER TABLE public.r_pp3 ATTACH PARTITION public.r_t FOR VALUES FROM ('') TO ('v5');
\set VERBOSITY default
ROLLBACK;
DROP TABLE public.r_pp3;
-- A read rolled back, then the transactions after it rolled back too: the background writer
-- commits the record on its own (an attacker's find: written in the next transaction, it was
-- lost when that one rolled back as well).
SET ROLE encml_r_reader;
BEGIN;
SELECT count(*) AS probe FROM public.r_t WHERE id = 1;
ROLLBACK;
BEGIN;
SELECT 1 AS also_rolled_back;
ROLLBACK;
RESET ROLE;
SELECT detail->>'command' AS command, table_name, effective_role
  FROM encml.audit_log WHERE id > :b11 AND kind = 'event' AND operation = 'read' ORDER BY 1, 3;

-- Statements that lock a relation before checking that the caller owns it (or may reference
-- it) are refused on the extension's relations before they queue a lock (an attacker's find:
-- queued behind any transaction that wrote an audited row, CREATE TRIGGER on the log stalled
-- every audited write and every seal).
SELECT dblink_connect('writer', format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user));
SELECT dblink_exec('writer', 'BEGIN');
SELECT dblink_exec('writer', 'INSERT INTO public.r_plain VALUES (77)');
SELECT dblink_exec('writer', 'PREPARE w AS SELECT * FROM encml.audit_witness');
SET ROLE encml_r_owner;
CREATE TABLE public.r_mine (seq bigint);
SET lock_timeout = '2s';
SELECT try($$CREATE TRIGGER zz AFTER INSERT ON encml.audit_log_unsealed FOR EACH ROW EXECUTE FUNCTION public.r_peek()$$) AS on_the_log;
SELECT try($$CREATE RULE r AS ON INSERT TO encml.audit_witness DO ALSO NOTHING$$) AS rule_on_the_witness;
SELECT try($$CREATE TABLE public.r_in PARTITION OF encml.audit_log_sealed FOR VALUES FROM (-10) TO (-1)$$) AS partition_of_the_log;
SELECT try($$ALTER TABLE public.r_mine ADD FOREIGN KEY (seq) REFERENCES encml.audit_witness (seq)$$) AS references_the_witness;
SELECT try($$CREATE TABLE public.r_ref (seq bigint REFERENCES encml.audit_witness)$$) AS column_references;
-- (Seventh round: DETACH PARTITION, also FINALIZE, and INHERIT / NO INHERIT of a parent.)
CREATE TABLE public.r_parted (a int) PARTITION BY LIST (a);
SELECT try($$ALTER TABLE public.r_parted DETACH PARTITION encml.audit_log_unsealed$$) AS detach_the_log;
SELECT try($$ALTER TABLE public.r_parted DETACH PARTITION encml.audit_witness FINALIZE$$) AS detach_finalize_the_witness;
SELECT try($$ALTER TABLE public.r_mine INHERIT encml.audit_witness$$) AS inherit_the_witness;
SELECT try($$ALTER TABLE public.r_mine NO INHERIT encml.audit_witness$$) AS no_inherit_the_witness;
DROP TABLE public.r_parted;
RESET lock_timeout;
DROP TABLE public.r_mine;
RESET ROLE;
SELECT dblink_exec('writer', 'ROLLBACK');
SELECT dblink_disconnect('writer');

-- Any role can fill the background worker slots (parallel queries): the read of a READ ONLY
-- transaction, which only the background writer could record at once, is then written by the
-- session itself at its next statement (an attacker's find: it was only in the server log).
SELECT count(dblink_connect('busy' || n, format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user))) AS busy
  FROM generate_series(1, current_setting('max_worker_processes')::int) n;
SELECT count(dblink_send_query('busy' || n, 'SET force_parallel_mode = on; SET parallel_leader_participation = off; SELECT pg_sleep(4)')) AS sent
  FROM generate_series(1, current_setting('max_worker_processes')::int) n;
SELECT pg_sleep(1);
-- (Minus the key lifecycle launcher's slot and the one left.)
SELECT count(*) >= current_setting('max_worker_processes')::int - 2 AS worker_slots_taken
  FROM pg_stat_activity WHERE backend_type = 'parallel worker';
SELECT max(id) AS b9 FROM encml.audit_log \gset
SET ROLE encml_r_reader;
BEGIN READ ONLY;
SELECT id AS read_while_no_worker FROM public.r_t WHERE id = 2;
COMMIT;
SELECT 1 AS next_statement;
RESET ROLE;
SELECT detail->>'command' AS command, table_name, detail->>'rows' AS read_rows, effective_role
  FROM encml.audit_log WHERE id > :b9 AND kind = 'event' AND operation = 'read' ORDER BY id;
SELECT count(*) AS done FROM generate_series(1, current_setting('max_worker_processes')::int) n,
       LATERAL dblink_get_result('busy' || n) AS r(x text);
SELECT count(dblink_disconnect('busy' || n)) AS disconnected FROM generate_series(1, current_setting('max_worker_processes')::int) n;

-- Seventh attacker round. An INSERT answers for existing rows: with a unique index, whether a
-- guessed value exists; with an exclusion constraint, the conflicting row's key in the DETAIL.
-- So INSERT (and COPY FROM, which has no executor start, recorded before it runs) is a read.
-- BRIN summarization evaluates the owner's index expressions over the rows outside any
-- statement the hooks saw: a read of each read-audited table the role may maintain.
SET ROLE encml_r_owner;
CREATE UNIQUE INDEX r_t_secret ON public.r_t (secret);
CREATE INDEX r_brin ON public.r_t USING brin (id);
GRANT INSERT ON public.r_t TO encml_r_reader;
RESET ROLE;
SELECT max(id) AS b12 FROM encml.audit_log \gset
SET ROLE encml_r_reader;
\set VERBOSITY terse
INSERT INTO public.r_t VALUES (100, 'v3');
COPY public.r_t FROM STDIN;
102	v4
\.
\set VERBOSITY default
INSERT INTO public.r_t VALUES (101, 'guess') ON CONFLICT DO NOTHING;
SET ROLE encml_r_owner;
SELECT brin_desummarize_range('public.r_brin', 0) IS NULL AS desummarized;
SELECT brin_summarize_range('public.r_brin', 0) >= 0 AS summarized;
SELECT brin_summarize_new_values('public.r_brin') >= 0 AS summarized_new;
SELECT 1 AS next_statement;
RESET ROLE;
SELECT detail->>'command' AS command, table_name, effective_role
  FROM encml.audit_log WHERE id > :b12 AND kind = 'event' AND operation = 'read' ORDER BY 1, 2, 3;
-- A partition of an audited table is audited as part of it: disabling it alone is refused (an
-- attacker's find: it dropped the partition's triggers, and its TRUNCATE left no event).
SET ROLE encml_r_owner;
SELECT try($$SELECT encml.audit_disable('public.r_part1')$$) AS disable_a_partition;
RESET ROLE;
SELECT count(*) AS partition_triggers FROM pg_trigger
 WHERE tgrelid = 'public.r_part1'::regclass AND tgname LIKE 'encml_audit%';

-- A new session decrypting from a read-audited table (attacker pass of issue 30: "RefCell already
-- borrowed", XX000, whenever the read's audit row was the session's first row written from
-- inside a query): the value comes back and the read is logged.
SET client_min_messages = error;
SELECT encml.create_key('r-enc-key') AS r_key \gset
RESET client_min_messages;
CREATE TABLE public.r_enc (id int, v encml.enc_bytea);
INSERT INTO public.r_enc VALUES (1, encml.encrypt('hello'::text, :'r_key'));
SELECT encml.audit_enable('public.r_enc', reads => true);
\c
SET client_min_messages = error;
SELECT 1 AS first_statement;
SELECT encml.decrypt_text(v) AS decrypted FROM public.r_enc;
RESET client_min_messages;
SELECT count(*) AS read_logged FROM encml.audit_log
 WHERE kind = 'event' AND operation = 'read' AND table_name = 'public.r_enc';
DROP TABLE public.r_enc;

SET ROLE encml_r_owner;
DROP TABLE public.r_t, public.r_plain, public.r_part;
RESET ROLE;
DROP OWNED BY encml_r_owner, encml_r_reader;
DROP ROLE encml_r_owner, encml_r_reader;
