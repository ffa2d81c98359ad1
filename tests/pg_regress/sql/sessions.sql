-- Two and more sessions: key changes reach other backends' caches at their next statement, and
-- nonces never repeat across concurrent backends. The other sessions are dblink connections.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('other', :'conninfo');
SELECT encml.create_key('regress-sessions') AS k \gset
CREATE TABLE shared (id int, v encml.enc_bytea);
INSERT INTO shared VALUES (1, encml.encrypt('before rotation', :'k'));

-- The other session caches the key by using it.
SELECT * FROM dblink('other', 'SELECT encml.decrypt_text(v) FROM shared') AS t(v text);
-- A rotation here: the other session's next encryption uses version 2.
SELECT encml.rotate_key(:'k');
SELECT * FROM dblink('other', format('SELECT encml.key_version(encml.encrypt(%L, %L))', 'x', :'k')) AS t(version int);
-- A destroy here: the other session's next decryption fails, without reconnecting, even in the
-- middle of a transaction that already used the key.
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', 'SELECT encml.decrypt_text(v) FROM shared') AS t(v text);
SET client_min_messages = warning;
SELECT encml.destroy_key(:'k');
RESET client_min_messages;
SELECT replace(v, :'k', '<k>') FROM dblink('other', format(
    'SELECT try(%L)', 'SELECT encml.decrypt_text(v) FROM shared')) AS t(v text);
SELECT replace(v, :'k', '<k>') FROM dblink('other', format(
    'SELECT try(%L)', format('SELECT encml.encrypt(%L, %L)', 'x', :'k'))) AS t(v text);
SELECT dblink_exec('other', 'COMMIT');
SELECT dblink_disconnect('other');

-- Nonces from four concurrent backends (and parallel workers) never repeat.
SELECT encml.create_key('regress-nonces') AS kn \gset
CREATE TABLE nonces (session int, nonce bytea);
SELECT dblink_connect('s' || i, :'conninfo') FROM generate_series(1, 4) i;
SELECT dblink_send_query('s' || i, format(
    'INSERT INTO nonces SELECT %s, substring(encml.encrypt(%L, %L)::bytea FROM 25 FOR 12) FROM generate_series(1, 25000)',
    i, 'same plaintext', :'kn'))
  FROM generate_series(1, 4) i;
SELECT sum(r) AS sessions_done FROM generate_series(1, 4) i,
       LATERAL (SELECT 1 AS r FROM dblink_get_result('s' || i) AS t(status text)) x;
SELECT dblink_disconnect('s' || i) FROM generate_series(1, 4) i;
SELECT count(*) AS nonces, count(DISTINCT nonce) AS distinct_nonces, count(DISTINCT session) AS sessions
  FROM nonces;
DROP TABLE shared, nonces;
