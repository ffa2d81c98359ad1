-- Audit triggers cannot be silenced. Every way a table owner (or a DBA acting with the owner's
-- rights, without superuser) could stop the row or TRUNCATE trigger of an audited table is
-- refused, whatever the trigger is called, and the refusal outlives the ERROR; a superuser's
-- change is logged and makes audit_verify() and compliance_report() fail for that table until
-- audit_enable repairs it. DDL on audited tables is logged; tables joining an audited table are
-- audited at once; writes in replica mode leave an event.
CREATE ROLE encml_s_owner NOLOGIN;
CREATE ROLE encml_s_dba NOLOGIN CREATEROLE IN ROLE encml_s_owner;
CREATE ROLE encml_s_auditor NOLOGIN IN ROLE encml_auditor;
GRANT CREATE ON SCHEMA public TO encml_s_owner;
SET ROLE encml_s_owner;
CREATE TABLE public.s_t (id int PRIMARY KEY, ssn text, email text);
SELECT encml.classify('public.s_t', 'ssn', 'pii');
SELECT encml.audit_enable('public.s_t', '{email}');
CREATE FUNCTION public.s_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
RESET ROLE;
SELECT max(id) AS b0 FROM encml.audit_log \gset

SET ROLE encml_s_owner;
SELECT try($$ALTER TABLE public.s_t ENABLE REPLICA TRIGGER encml_audit_row$$) AS replica_only;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER encml_audit_row$$) AS disable_row;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER USER$$) AS disable_user;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER ALL$$) AS disable_all;
SELECT try($$CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON public.s_t
              FOR EACH ROW WHEN (false) EXECUTE FUNCTION encml.audit_row_trigger('email', 'ssn')$$) AS when_false;
SELECT try($$CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT ON public.s_t
              FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger('email', 'ssn')$$) AS insert_only;
SELECT try($$CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OF id OR DELETE ON public.s_t
              FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger('email', 'ssn')$$) AS update_of_id;
SELECT try($$CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON public.s_t
              FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger('email')$$) AS ssn_unredacted;
SELECT try($$CREATE OR REPLACE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON public.s_t
              FOR EACH ROW EXECUTE FUNCTION public.s_noop()$$) AS other_function;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER encml_audit_truncate$$) AS disable_truncate;
SELECT try($$DROP TRIGGER encml_audit_truncate ON public.s_t$$) AS drop_truncate;
-- A rename alone changes nothing (triggers are recognised by their function); disabling or
-- dropping under the new name is refused like under the old one.
SELECT try($$ALTER TRIGGER encml_audit_row ON public.s_t RENAME TO s_renamed$$) AS rename;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER s_renamed$$) AS disable_renamed;
SELECT try($$DROP TRIGGER s_renamed ON public.s_t$$) AS drop_renamed;
SELECT try($$CREATE TRIGGER s_first BEFORE INSERT ON public.s_t FOR EACH ROW EXECUTE FUNCTION public.s_noop()$$)
    AS unrelated_trigger;
SELECT try($$DROP TRIGGER s_first ON public.s_t$$) AS drop_unrelated;
RESET ROLE;
-- A DBA with the owner's privileges but no superuser is refused the same way.
SET ROLE encml_s_dba;
SELECT try($$ALTER TABLE public.s_t DISABLE TRIGGER s_renamed$$) AS dba_disable;
RESET ROLE;

-- The triggers are as audit_enable made them (one renamed), and the chain verifies.
SELECT tgname, tgtype, tgenabled, encode(tgargs, 'escape') AS args FROM pg_trigger
 WHERE tgrelid = 'public.s_t'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT count(*) AS deviations FROM encml.audit_state();
SELECT ok FROM encml.audit_verify();
-- Each refusal outlived its ERROR; the allowed statements are chained ddl events.
SELECT operation, coalesce(table_name, detail->>'table') AS tbl, detail->>'statement' AS statement,
       detail->>'command_tag' AS command_tag, detail->'problems'->>0 AS problem
  FROM encml.audit_log WHERE id > :b0 AND operation IN ('audit_trigger_refused', 'ddl') ORDER BY id;

-- A superuser's change is logged as critical, and verification fails naming the table.
SELECT max(id) AS b1 FROM encml.audit_log \gset
ALTER TABLE public.s_t ENABLE REPLICA TRIGGER s_renamed;
SELECT ok, rows_checked > 0 AS chain_walked, regexp_replace(detail, 'seq \d+', 'seq N') AS detail
  FROM encml.audit_verify();
SET ROLE encml_s_auditor;
SELECT * FROM encml.audit_state();
SELECT check_name, status, regexp_replace(detail, 'seq \d+', 'seq N') AS detail
  FROM encml.compliance_report() WHERE check_name IN ('audit_chain', 'audit_state');
RESET ROLE;
SELECT operation, table_name, detail->>'severity' AS severity, detail->'problems'->>0 AS problem
  FROM encml.audit_log WHERE id > :b1 AND operation <> 'ddl' ORDER BY id;
-- In replica mode the (ENABLE ALWAYS) event triggers still fire.
SET session_replication_role = replica;
ALTER TABLE public.s_t ENABLE TRIGGER s_renamed;
ALTER TABLE public.s_t ENABLE ALWAYS TRIGGER encml_audit_truncate;
RESET session_replication_role;
SELECT count(*) AS deviations FROM encml.audit_state();
SELECT operation, detail->>'command_tag' AS command_tag FROM encml.audit_log
 WHERE id > :b1 AND operation = 'ddl' ORDER BY id;
SELECT encml.audit_enable('public.s_t', '{email}');
SELECT ok FROM encml.audit_verify();

-- Writes in replica mode fire no ordinary trigger: with the library preloaded each statement
-- leaves a critical event instead.
SELECT max(id) AS b2 FROM encml.audit_log \gset
SET session_replication_role = replica;
INSERT INTO public.s_t VALUES (10, '000-00-0000', 'r@x.example');
UPDATE public.s_t SET email = 'r2@x.example' WHERE id = 10;
DELETE FROM public.s_t WHERE id = 10;
SELECT count(*) FROM public.s_t;
RESET session_replication_role;
SELECT kind, operation, detail->>'command' AS command, detail->>'severity' AS severity
  FROM encml.audit_log WHERE id > :b2 ORDER BY id;

-- Disabled or dropped event triggers (superuser only) are detected.
ALTER EVENT TRIGGER encml_audit_ddl_end DISABLE;
ALTER EVENT TRIGGER encml_audit_sql_drop ENABLE;
SELECT * FROM encml.audit_state();
SELECT ok, regexp_replace(detail, 'seq \d+', 'seq N') AS detail FROM encml.audit_verify();
ALTER EVENT TRIGGER encml_audit_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_sql_drop ENABLE ALWAYS;
SELECT ok FROM encml.audit_verify();
-- ... and each change of them is a critical event written outside the transaction (library
-- preloaded; an attacker's find: disabled and enabled again, they left nothing).
SELECT max(id) AS b_evt FROM encml.audit_log \gset
BEGIN;
ALTER EVENT TRIGGER encml_audit_ddl_start DISABLE;
ALTER EVENT TRIGGER encml_audit_ddl_start RENAME TO encml_x;
ROLLBACK;
SELECT try($$DROP EVENT TRIGGER encml_audit_table_rewrite$$) AS dropped;
SELECT operation, detail->>'event_triggers' AS event_triggers, detail->>'action' AS action,
       detail->>'severity' AS severity
  FROM encml.audit_log WHERE id > :b_evt ORDER BY id;

-- A renamed column keeps its redaction (explicit and classified).
SET ROLE encml_s_owner;
ALTER TABLE public.s_t RENAME COLUMN ssn TO national_id;
ALTER TABLE public.s_t RENAME COLUMN email TO mail;
INSERT INTO public.s_t VALUES (1, '123-45-6789', 'a@x.example');
RESET ROLE;
SELECT new_row->>'national_id' LIKE 'hmac:%' AS ssn_redacted, new_row->>'mail' LIKE 'hmac:%' AS email_redacted
  FROM encml.audit_log WHERE kind = 'row' ORDER BY id DESC LIMIT 1;
SELECT redact FROM encml.audited_tables WHERE table_oid = 'public.s_t'::regclass;
SELECT count(*) AS deviations FROM encml.audit_state();
-- Dropping a classified column is the owner's right (it was refused as a changed redaction).
SET ROLE encml_s_owner;
ALTER TABLE public.s_t ADD COLUMN phone text;
SELECT encml.classify('public.s_t', 'phone', 'pii');
ALTER TABLE public.s_t DROP COLUMN phone;
RESET ROLE;
SELECT count(*) AS deviations FROM encml.audit_state();
-- Classifications name their columns (a restore finds them by name; attribute numbers change
-- when a table with dropped columns is dumped), follow renames on any table, audited or not,
-- and go with a dropped column or table (a later column or table could take its number or oid).
SET ROLE encml_s_owner;
CREATE TABLE public.s_plain (id int, gone int, mail text, card text);
ALTER TABLE public.s_plain DROP COLUMN gone;
SELECT encml.classify('public.s_plain', 'mail', 'pii');
SELECT encml.classify('public.s_plain', 'card', 'pci');
ALTER TABLE public.s_plain RENAME COLUMN mail TO email;
RESET ROLE;
SELECT column_name, attnum, label FROM encml.column_classes
 WHERE table_oid = 'public.s_plain'::regclass ORDER BY attnum;
-- (a row as pg_dump writes it, naming its column: the name decides the number)
INSERT INTO encml.column_classes (table_oid, attnum, label, column_name)
VALUES ('public.s_plain', 9, 'secret', 'id');
SELECT column_name, attnum, label FROM encml.column_classes
 WHERE table_oid = 'public.s_plain'::regclass ORDER BY attnum;
SET ROLE encml_s_owner;
ALTER TABLE public.s_plain DROP COLUMN card;
RESET ROLE;
SELECT column_name, attnum, label FROM encml.column_classes
 WHERE table_oid = 'public.s_plain'::regclass ORDER BY attnum;
SELECT 'public.s_plain'::regclass::oid AS s_plain_oid \gset
SET ROLE encml_s_owner;
DROP TABLE public.s_plain;
RESET ROLE;
SELECT count(*) AS classifications_of_dropped_table FROM encml.column_classes WHERE table_oid::oid = :s_plain_oid;

-- Rows that enter or leave an audited table's scans without a row trigger: attaching a
-- partition or an inheritance child that holds rows, detaching, dropping one. Each is logged
-- (with the rows it brought), and joining tables are audited at once.
SET ROLE encml_s_owner;
CREATE TABLE public.s_p (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE public.s_p1 PARTITION OF public.s_p FOR VALUES FROM (0) TO (100);
SELECT encml.audit_enable('public.s_p');
RESET ROLE;
SELECT max(id) AS b3 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
CREATE TABLE public.s_p2 (id int, v text);
INSERT INTO public.s_p2 VALUES (150, 'before attach'), (151, 'before attach');
ALTER TABLE public.s_p ATTACH PARTITION public.s_p2 FOR VALUES FROM (100) TO (200);
INSERT INTO public.s_p2 VALUES (152, 'after attach');
TRUNCATE public.s_p2;
CREATE TABLE public.s_p3 PARTITION OF public.s_p FOR VALUES FROM (200) TO (300);
DROP TABLE public.s_p3;
ALTER TABLE public.s_p DETACH PARTITION public.s_p1;
CREATE TABLE public.s_child (extra int) INHERITS (public.s_t);
INSERT INTO public.s_child VALUES (5, 'x', 'y', 1);
ALTER TABLE public.s_child NO INHERIT public.s_t;
ALTER TABLE public.s_child INHERIT public.s_t;
SELECT try($$ALTER TABLE public.s_child DISABLE TRIGGER encml_audit_row$$) AS child_disable;
RESET ROLE;
SELECT kind, operation, table_name, detail->>'command_tag' AS command_tag, detail->'tables_added' AS added,
       detail->'tables_dropped' AS dropped
  FROM encml.audit_log WHERE id > :b3 ORDER BY id;
SELECT count(*) AS deviations FROM encml.audit_state();
SELECT ok FROM encml.audit_verify();

-- DETACH PARTITION ... CONCURRENTLY commits a first transaction that takes the partition out of
-- the scans, then waits for readers; interrupted there (an attacker's find: a statement timeout),
-- it left no event. The event is written before that first commit; FINALIZE and a later
-- re-ATTACH name the partition and count its rows (it kept its truncate trigger in between).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('reader', format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user));
SELECT max(id) AS b5 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
INSERT INTO public.s_p2 VALUES (160, 'stays'), (161, 'stays'), (162, 'stays');
RESET ROLE;
SELECT dblink_exec('reader', 'BEGIN');
SELECT * FROM dblink('reader', 'SELECT count(*) FROM public.s_p') AS t(n bigint);
SET ROLE encml_s_owner;
SET statement_timeout = '2s';
\set VERBOSITY terse
ALTER TABLE public.s_p DETACH PARTITION public.s_p2 CONCURRENTLY;
\set VERBOSITY default
RESET statement_timeout;
SELECT count(*) AS rows_in_scans FROM public.s_p;
RESET ROLE;
SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'public.s_p2'::regclass;
SELECT dblink_exec('reader', 'ROLLBACK');
SELECT dblink_disconnect('reader');
SET ROLE encml_s_owner;
ALTER TABLE public.s_p DETACH PARTITION public.s_p2 FINALIZE;
ALTER TABLE public.s_p ATTACH PARTITION public.s_p2 FOR VALUES FROM (100) TO (200);
ALTER TABLE public.s_p DETACH PARTITION public.s_p2 CONCURRENTLY;
RESET ROLE;
SELECT operation, table_name, detail->>'phase' AS phase, detail->'tables_leaving' AS leaving,
       detail->'tables_left' AS left, detail->'tables_added' AS added
  FROM encml.audit_log WHERE id > :b5 ORDER BY id;
SELECT count(*) AS audit_triggers_left_on_s_p2 FROM pg_trigger WHERE tgrelid = 'public.s_p2'::regclass;
-- A partition with partitions of its own leaves and joins with them, each named with its rows
-- (an attacker's find: only the top one was counted).
SET ROLE encml_s_owner;
CREATE TABLE public.s_p4 PARTITION OF public.s_p FOR VALUES FROM (400) TO (500) PARTITION BY RANGE (id);
CREATE TABLE public.s_p4a PARTITION OF public.s_p4 FOR VALUES FROM (400) TO (450);
INSERT INTO public.s_p VALUES (401, 'deep'), (402, 'deep');
RESET ROLE;
SELECT max(id) AS b6 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
ALTER TABLE public.s_p DETACH PARTITION public.s_p4 CONCURRENTLY;
ALTER TABLE public.s_p ATTACH PARTITION public.s_p4 FOR VALUES FROM (400) TO (500);
ALTER TABLE public.s_p DETACH PARTITION public.s_p4;
RESET ROLE;
SELECT detail->>'phase' AS phase, detail->'tables_leaving' AS leaving,
       detail->'tables_left' AS left, detail->'tables_added' AS added
  FROM encml.audit_log WHERE id > :b6 ORDER BY id;
SELECT count(*) AS deviations FROM encml.audit_state();
SELECT ok FROM encml.audit_verify();

-- A rewrite of an audited table (every row changed, no row trigger) is logged with the DDL.
SELECT max(id) AS b4 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
ALTER TABLE public.s_t ALTER COLUMN id TYPE bigint USING id + 1000;
RESET ROLE;
SELECT operation, table_name, detail->>'table' AS rewritten, detail->>'command_tag' AS command_tag
  FROM encml.audit_log WHERE id > :b4 ORDER BY id;

-- DDL on a parent of the owner's own reaches the audited table below it (an attacker's find:
-- attaching the audited table to a new partitioned table, then adding a column, a trigger and
-- renaming a classified column there left no event, and the next row logged the column in clear).
SET ROLE encml_s_owner;
CREATE TABLE public.s_q (id int NOT NULL, ssn text);
SELECT encml.classify('public.s_q', 'ssn', 'pii');
SELECT encml.audit_enable('public.s_q');
CREATE TABLE public.s_pp (id int NOT NULL, ssn text) PARTITION BY RANGE (id);
RESET ROLE;
SELECT max(id) AS b9 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
ALTER TABLE public.s_pp ATTACH PARTITION public.s_q DEFAULT;
CREATE FUNCTION public.s_peek() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN new; END $$;
CREATE TRIGGER a_peek BEFORE UPDATE ON public.s_pp FOR EACH ROW EXECUTE FUNCTION public.s_peek();
ALTER TABLE public.s_pp ADD COLUMN extra int DEFAULT 42;
ALTER TABLE public.s_pp RENAME COLUMN ssn TO ssn2;
INSERT INTO public.s_q VALUES (1, '123-45-6789');
ALTER TABLE public.s_pp DETACH PARTITION public.s_q;
RESET ROLE;
SELECT operation, table_name, detail->>'command_tag' AS command_tag,
       (SELECT string_agg(o->>'object', ', ') FROM jsonb_array_elements(detail->'objects') o) AS objects,
       new_row->>'ssn2' = '123-45-6789' AS logged_in_clear
  FROM encml.audit_log WHERE id > :b9 AND table_name = 'public.s_q' ORDER BY id;
SELECT count(*) AS deviations FROM encml.audit_state();
SET ROLE encml_s_owner;
DROP TABLE public.s_pp, public.s_q;
DROP FUNCTION public.s_peek();
RESET ROLE;

-- Detaching a parent of the owner's own from above, or taking it out of an inheritance tree,
-- leaves the audited table below it audited (an attacker's find: the audited table's own
-- triggers were dropped as if it had left an audited tree).
SET ROLE encml_s_owner;
CREATE TABLE public.s_v (id int NOT NULL, v text);
SELECT encml.audit_enable('public.s_v');
CREATE TABLE public.s_top (id int NOT NULL, v text) PARTITION BY RANGE (id);
CREATE TABLE public.s_sub PARTITION OF public.s_top DEFAULT PARTITION BY RANGE (v);
ALTER TABLE public.s_sub ATTACH PARTITION public.s_v DEFAULT;
ALTER TABLE public.s_top DETACH PARTITION public.s_sub;
CREATE TABLE public.s_iv (id int, v text);
SELECT encml.audit_enable('public.s_iv');
CREATE TABLE public.s_itop (id int, v text);
CREATE TABLE public.s_imid (id int, v text);
ALTER TABLE public.s_imid INHERIT public.s_itop;
ALTER TABLE public.s_iv INHERIT public.s_imid;
ALTER TABLE public.s_imid NO INHERIT public.s_itop;
RESET ROLE;
SELECT tgrelid::regclass AS audited_table, count(*) AS audit_triggers FROM pg_trigger
 WHERE tgrelid IN ('public.s_v'::regclass, 'public.s_iv'::regclass) AND tgname LIKE 'encml_audit%'
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS deviations FROM encml.audit_state();
SET ROLE encml_s_owner;
DROP TABLE public.s_top, public.s_sub, public.s_v, public.s_iv, public.s_imid, public.s_itop;
RESET ROLE;

-- A foreign key referencing an audited table puts Postgres's triggers on it: a ddl event there
-- (an attacker's find: it left none).
SET ROLE encml_s_owner;
CREATE TABLE public.s_pk (id int PRIMARY KEY);
SELECT encml.audit_enable('public.s_pk');
RESET ROLE;
SELECT max(id) AS b10 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
CREATE TABLE public.s_fk (pid int REFERENCES public.s_pk (id));
CREATE TABLE public.s_fk2 (pid int);
ALTER TABLE public.s_fk2 ADD FOREIGN KEY (pid) REFERENCES public.s_pk (id);
RESET ROLE;
SELECT operation, table_name, detail->>'command_tag' AS command_tag
  FROM encml.audit_log WHERE id > :b10 ORDER BY id;
SET ROLE encml_s_owner;
DROP TABLE public.s_fk, public.s_fk2, public.s_pk;
RESET ROLE;

-- A cast to json of the owner's own type does not decide what the log says (an attacker's find:
-- to_jsonb converted the column through the cast, whose function ran inside the audit trigger
-- and logged another value). Such columns are logged as their type's output text; the cast
-- never runs. Types without such a cast keep to_jsonb's rendering.
SET ROLE encml_s_owner;
CREATE TYPE public.s_mood AS ENUM ('sad', 'happy');
CREATE DOMAIN public.s_score AS int;
CREATE TABLE public.s_cast (id int, m public.s_mood, ms public.s_mood[], sc public.s_score);
SELECT encml.audit_enable('public.s_cast');
-- (a row logged before the cast exists: to_jsonb's rendering; the next, after it, is not)
INSERT INTO public.s_cast VALUES (0, 'sad', '{sad}', 6);
CREATE FUNCTION public.s_mood_json(public.s_mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'cast ran'; RETURN '"sad"'::json; END $$;
CREATE CAST (public.s_mood AS json) WITH FUNCTION public.s_mood_json(public.s_mood);
INSERT INTO public.s_cast VALUES (1, 'happy', '{happy,sad}', 7);
RESET ROLE;
SELECT new_row FROM encml.audit_log WHERE table_name = 'public.s_cast' AND operation = 'INSERT' ORDER BY id;
SET ROLE encml_s_owner;
DROP TABLE public.s_cast;
DROP CAST (public.s_mood AS json);
DROP FUNCTION public.s_mood_json(public.s_mood);
DROP DOMAIN public.s_score;
DROP TYPE public.s_mood;
RESET ROLE;

-- Found by an attacker with a login role (each failed before 0.2.0's fixes):
-- the trigger function fires only AFTER ... FOR EACH ROW (TRUNCATE: per statement), and only on
-- audited tables: as a statement trigger it crashed the server, as a BEFORE trigger it logged
-- changes a later trigger cancelled, on a table of one's own it computed redaction tokens of
-- guesses.
SET ROLE encml_s_owner;
CREATE TEMP TABLE s_guess (v text);
SELECT try($$CREATE TRIGGER oracle AFTER INSERT ON s_guess FOR EACH ROW
              EXECUTE FUNCTION encml.audit_row_trigger('v')$$) AS oracle_trigger_created;
SELECT regexp_replace(try($$INSERT INTO s_guess VALUES ('123-45-6789')$$), 'pg_temp_[0-9]+', 'pg_temp') AS oracle_fires;
CREATE TABLE public.s_x (id int);
SELECT encml.audit_enable('public.s_x');
SELECT try($$CREATE TRIGGER st AFTER INSERT ON public.s_x FOR EACH STATEMENT
              EXECUTE FUNCTION encml.audit_row_trigger()$$) AS statement_trigger;
SELECT try($$CREATE TRIGGER bt BEFORE DELETE ON public.s_x FOR EACH ROW
              EXECUTE FUNCTION encml.audit_row_trigger('x')$$) AS before_trigger;
SELECT try($$CREATE TRIGGER leak AFTER INSERT OR UPDATE OR DELETE ON public.s_x FOR EACH ROW
              EXECUTE FUNCTION encml.audit_row_trigger()$$) AS second_unredacting_trigger;
RESET ROLE;
-- (A superuser may create them; they then refuse to fire, and the state names them.)
CREATE TRIGGER st AFTER INSERT ON public.s_x FOR EACH STATEMENT EXECUTE FUNCTION encml.audit_row_trigger();
SELECT try($$INSERT INTO public.s_x VALUES (1)$$) AS statement_trigger_fires;
SELECT * FROM encml.audit_state() WHERE table_name = 'public.s_x';
DROP TRIGGER st ON public.s_x;
CREATE TRIGGER bt BEFORE INSERT ON public.s_x FOR EACH ROW EXECUTE FUNCTION encml.audit_row_trigger();
SELECT try($$INSERT INTO public.s_x VALUES (1)$$) AS before_trigger_fires;
DROP TRIGGER bt ON public.s_x;
-- (A role's own table with the audit trigger function is no deviation: it refuses to fire there;
-- an attacker's find: any role with TEMP made audit_verify() fail that way, with no event.)
SELECT table_name, problem FROM encml.audit_state();
DROP TABLE pg_temp.s_guess;
SELECT count(*) AS deviations FROM encml.audit_state();

-- Values of every row changed through their types (an enum value renamed, a composite
-- attribute dropped), columns dropped by DROP TYPE ... CASCADE, and rules, policies, indexes and
-- other triggers dropped from an audited table, and extended statistics on it (an attacker's
-- find): each is a ddl event.
SELECT max(id) AS b6 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
CREATE TYPE public.s_state AS ENUM ('alive', 'x');
CREATE TYPE public.s_pair AS (a text, b text);
CREATE TYPE public.s_gone AS (z int);
ALTER TABLE public.s_x ADD COLUMN state public.s_state DEFAULT 'alive', ADD COLUMN pair public.s_pair,
                       ADD COLUMN gone public.s_gone;
ALTER TYPE public.s_state RENAME VALUE 'alive' TO 'deceased';
ALTER TYPE public.s_pair DROP ATTRIBUTE b;
DROP TYPE public.s_gone CASCADE;
CREATE INDEX s_x_state ON public.s_x (state);
CREATE RULE s_r AS ON UPDATE TO public.s_x DO ALSO NOTIFY s_x_changed;
CREATE POLICY s_p ON public.s_x USING (true);
DROP INDEX public.s_x_state;
DROP RULE s_r ON public.s_x;
DROP POLICY s_p ON public.s_x;
CREATE STATISTICS public.s_st (ndistinct) ON state, id FROM public.s_x;
DROP STATISTICS public.s_st;
RESET ROLE;
SELECT operation, detail->>'command_tag' AS command_tag, detail->'objects'->0->>'object_type' AS object_type,
       detail->'objects_dropped' AS dropped
  FROM encml.audit_log WHERE id > :b6 ORDER BY id;

-- The extension's catalog queries do not use the caller's operators: an "=" of one's own
-- first on the search_path does not keep a new child from getting its audit triggers.
CREATE SCHEMA s_evil AUTHORIZATION encml_s_owner;
SET ROLE encml_s_owner;
CREATE FUNCTION s_evil.never(oid, oid) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR s_evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = s_evil.never);
SET search_path = s_evil, pg_catalog, public;
CREATE TABLE public.s_x_child () INHERITS (public.s_x);
RESET search_path;
RESET ROLE;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.s_x_child'::regclass ORDER BY 1;
-- Leaving the tree drops them again; the event names the table and its rows.
SET ROLE encml_s_owner;
INSERT INTO public.s_x_child (id) VALUES (7);
ALTER TABLE public.s_x_child NO INHERIT public.s_x;
RESET ROLE;
SELECT detail->'tables_left' AS tables_left FROM encml.audit_log ORDER BY id DESC LIMIT 1;
SELECT count(*) AS triggers_left_on_it FROM pg_trigger WHERE tgrelid = 'public.s_x_child'::regclass;
SELECT count(*) AS deviations FROM encml.audit_state();
SET ROLE encml_s_owner;
DROP TABLE public.s_x_child, public.s_x;
DROP SCHEMA s_evil CASCADE;
DROP TYPE public.s_state, public.s_pair;
RESET ROLE;

-- Dropping an audited table is logged and the table is forgotten.
SELECT max(id) AS b5 FROM encml.audit_log \gset
SET ROLE encml_s_owner;
DROP TABLE public.s_child, public.s_t;
DROP TABLE public.s_p, public.s_p1;
RESET ROLE;
SELECT operation, table_name, detail->>'severity' AS severity FROM encml.audit_log WHERE id > :b5 ORDER BY id;
SELECT count(*) AS still_audited FROM encml.audited_tables WHERE table_oid::text LIKE '%s\_%';
SELECT ok FROM encml.audit_verify();

DROP OWNED BY encml_s_owner, encml_s_dba, encml_s_auditor;
DROP ROLE encml_s_dba, encml_s_owner, encml_s_auditor;
