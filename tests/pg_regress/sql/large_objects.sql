-- Encrypted large objects: round trips at chunk boundaries, range reads, tampering (truncation,
-- swapped and reordered chunks, removed tail), privileges and tenants.
SELECT encml.create_key('regress-lo') AS k \gset
-- try() without the object ids, which differ from run to run.
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), 'large object \d+', 'large object N', 'g') $$;
-- 10,000 bytes of deterministic data; 4 KiB chunks give 3 chunks, the last one partial.
SELECT decode(string_agg(md5(i::text), ''), 'hex') AS data FROM generate_series(1, 625) AS i \gset
SELECT lo_from_bytea(0, :'data') AS src \gset
SELECT encml.lo_encrypt(:src, :'k', 4096) AS enc \gset

SELECT key_id = :'k'::uuid AS key_matches, key_version, plaintext_bytes, chunk_size, chunks
  FROM encml.lo_encryption_info(:enc);
-- 56-byte header, 16-byte tag per chunk.
SELECT octet_length(lo_get(:enc)) AS encrypted_bytes, octet_length(lo_get(:enc)) - 10000 AS overhead;
SELECT position(substring(:'data'::bytea from 1 for 16) in lo_get(:enc)) AS plaintext_visible;
SELECT encml.lo_decrypt(:enc) AS dec \gset
SELECT lo_get(:dec) = :'data'::bytea AS round_trip;

-- Sizes around the chunk size, and the empty object (one empty chunk). Each step is its own
-- statement: a large object is visible from the next statement on, as with lo_open.
CREATE FUNCTION pg_temp.round_trip(data bytea, key uuid, chunk int, OUT same bool, OUT chunks bigint)
LANGUAGE plpgsql AS $$
DECLARE src oid; enc oid; dec oid;
BEGIN
    src := lo_from_bytea(0, data);
    enc := encml.lo_encrypt(src, key, chunk);
    dec := encml.lo_decrypt(enc);
    same := lo_get(dec) = data;
    SELECT i.chunks INTO chunks FROM encml.lo_encryption_info(enc) AS i;
END
$$;
SELECT n, (pg_temp.round_trip(substring(:'data'::bytea from 1 for n), :'k', 1024)).*
  FROM (VALUES (0), (1), (1023), (1024), (1025), (4096), (10000)) AS t(n);
-- The default chunk size is 1 MiB.
SELECT encml.lo_encrypt(:src, :'k') AS enc_default \gset
SELECT chunk_size, chunks FROM encml.lo_encryption_info(:enc_default);

-- Range reads decrypt only the chunks they need and match the plaintext.
SELECT o, l, encml.lo_decrypt_range(:enc, o, l) = substring(:'data'::bytea from o + 1 for l) AS same,
       octet_length(encml.lo_decrypt_range(:enc, o, l)) AS got
  FROM (VALUES (0, 10), (4090, 20), (0, 10000), (8191, 2), (9990, 100), (10000, 5), (20000, 5), (5, 0)) AS t(o, l);
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, -1, 5)', :enc));

-- Tampering. A byte flipped inside chunk 1:
SELECT lo_from_bytea(0, lo_get(:enc)) AS t1 \gset
-- (the byte's bits inverted: setting it to a constant left it unchanged once in 256 runs)
SELECT lo_put(:t1, 56 + 4112 + 100,
              set_byte('\x00'::bytea, 0, get_byte(lo_get(:t1, 56 + 4112 + 100, 1), 0) # 255));
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t1));
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, 4200, 10)', :t1));
-- ... while a range in an untouched chunk still reads.
SELECT encml.lo_decrypt_range(:t1, 0, 4) = substring(:'data'::bytea from 1 for 4) AS untouched_chunk_reads;
-- Chunks 0 and 1 swapped:
SELECT lo_from_bytea(0, substring(e from 1 for 56) || substring(e from 57 + 4112 for 4112)
                        || substring(e from 57 for 4112) || substring(e from 57 + 8224)) AS t2
  FROM (SELECT lo_get(:enc) AS e) s \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t2));
-- The last chunk moved to the front (reordered; same length):
SELECT lo_from_bytea(0, substring(e from 1 for 56) || substring(e from 57 + 8224)
                        || substring(e from 57 for 8224)) AS t3
  FROM (SELECT lo_get(:enc) AS e) s \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t3));
-- Truncated by one byte, and extended by one byte:
SELECT lo_from_bytea(0, substring(e from 1 for length(e) - 1)) AS t4 FROM (SELECT lo_get(:enc) AS e) s \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t4));
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, 0, 1)', :t4));
SELECT lo_from_bytea(0, lo_get(:enc) || '\x00'::bytea) AS t5 \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t5));
-- The tail chunk removed and the header's length rewritten to match (8192 bytes, 2 chunks):
SELECT lo_from_bytea(0, overlay(substring(e from 1 for 56 + 8224) placing int8send(8192) from 29)) AS t6
  FROM (SELECT lo_get(:enc) AS e) s \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t6));
-- A shortened object whose header claims the shorter length: even a range read inside the
-- remaining chunks is refused, because the (new) last chunk is always authenticated.
SELECT lo_from_bytea(0, overlay(substring(e from 1 for 56 + 4112) placing int8send(4096) from 29)) AS t8
  FROM (SELECT lo_get(:enc) AS e) s \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, 0, 10)', :t8));
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, 5000, 10)', :t8));
-- A chunk from another object under the same key:
SELECT encml.lo_encrypt(:src, :'k', 4096) AS other \gset
SELECT lo_from_bytea(0, overlay(lo_get(:enc) placing substring(lo_get(:other) from 57 for 4112) from 57)) AS t7 \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t7));
-- Not an encrypted object; a missing object; bad chunk sizes; NULLs.
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :src));
SELECT pg_temp.t('SELECT encml.lo_decrypt(4000000000)');
SELECT pg_temp.t(format('SELECT encml.lo_encrypt(%s, %L, 100)', :src, :'k'));
SELECT encml.lo_encrypt(NULL, :'k') IS NULL AS null_src, encml.lo_decrypt(NULL) IS NULL AS null_dec,
       encml.lo_decrypt_range(:enc, NULL, 5) IS NULL AS null_offset;
-- A failed decryption leaves no partial object behind.
SELECT count(*) AS objects_before FROM pg_largeobject_metadata \gset
SELECT pg_temp.t(format('SELECT encml.lo_decrypt(%s)', :t6));
SELECT count(*) - :objects_before AS new_objects FROM pg_largeobject_metadata;

-- Rotation: lo_reencrypt writes a new object under the current version (the source when it is
-- current already); retiring the old version is refused while an object still uses it.
SELECT encml.create_key('regress-lo-rot') AS kr \gset
SELECT encml.lo_encrypt(:src, :'kr', 4096) AS rot \gset
SELECT encml.rotate_key(:'kr');
SELECT pg_temp.t(format('SELECT encml.retire_key_version(%L, 1)', :'kr')) ~ 'still encrypts 1 value' AS retire_refused;
SELECT encml.lo_reencrypt(:rot) AS rot2 \gset
SELECT key_version, plaintext_bytes FROM encml.lo_encryption_info(:rot2);
SELECT encml.lo_reencrypt(:rot2) = :rot2 AS already_current;
SELECT encml.lo_decrypt(:rot2) AS rot_dec \gset
SELECT lo_get(:rot_dec) = :'data'::bytea AS rotated_round_trip;
SELECT lo_unlink(:rot);
SELECT encml.retire_key_version(:'kr', 1);

-- Large-object privileges are the caller's: no SELECT on the object, no encryption or decryption.
CREATE ROLE lo_reader;
SELECT pg_temp.t(format('SET ROLE lo_reader; SELECT encml.lo_decrypt(%s)', :enc));
RESET ROLE;
SELECT pg_temp.t(format('SET ROLE lo_reader; SELECT encml.lo_encrypt(%s, %L)', :src, :'k'));
RESET ROLE;
DROP ROLE lo_reader;
-- A tenant-bound key stays bound: decrypting needs the tenant.
SELECT encml.create_tenant('lo-t');
SELECT encml.set_tenant('lo-t');
SELECT encml.lo_encrypt(:src, encml.tenant_key(), 4096) AS tenc \gset
SELECT encml.reset_tenant();
CREATE ROLE lo_other;
GRANT SELECT ON LARGE OBJECT :tenc TO lo_other;
SET ROLE lo_other;
SELECT pg_temp.t(format('SELECT encml.lo_decrypt_range(%s, 0, 4)', :tenc)) LIKE '42501: key % belongs to tenant "lo-t"%' AS refused;
RESET ROLE;
DROP OWNED BY lo_other;
DROP ROLE lo_other;
