-- ML data on distributed tables: encrypted tensors (encrypted and decrypted on the workers)
-- and homomorphic vector sums (partial sums combined on the coordinator).
SET client_min_messages = error;
SELECT encml.create_key('citus-tensors') AS tk \gset
RESET client_min_messages;
CREATE TABLE embeddings (id bigint, vec encml.enc_bytea);
SELECT create_distributed_table('embeddings', 'id', shard_count => 8);
CREATE TABLE embeddings_plain (id bigint, vec real[]);
SELECT create_distributed_table('embeddings_plain', 'id', colocate_with => 'embeddings');
INSERT INTO embeddings_plain SELECT i, ARRAY[i, i * 0.5, -i]::real[] FROM generate_series(1, 1000) i;
INSERT INTO embeddings SELECT id, encml.encrypt_tensor(vec, :'tk') FROM embeddings_plain;
SELECT * FROM plan('SELECT sum((encml.decrypt_tensor_real(vec))[1]) FROM embeddings');
SELECT sum((encml.decrypt_tensor_real(vec))[1]) AS sum_first, sum((encml.decrypt_tensor_real(vec))[3]) AS sum_third,
       count(*) FILTER (WHERE array_length(encml.decrypt_tensor_real(vec), 1) = 3) AS three_values
  FROM embeddings;
SELECT bool_and(encml.decrypt_tensor_real(e.vec) = p.vec) AS all_round_trip
  FROM embeddings e JOIN embeddings_plain p USING (id);

-- Homomorphic sums of model updates: the keyset is registered on the coordinator, updates are
-- encrypted there (clients do it in production), stored on the workers' shards.
SET encml.fhe_client_functions = on;
SELECT public_material AS pk, secret_key AS sk FROM encml.fhe_keygen() \gset
SELECT encml.fhe_register_keyset('citus-fhe', :'pk') AS ks \gset
CREATE TABLE fhe_plain AS
SELECT i, array_agg(((i * j) % 200 - 100)::float8 ORDER BY j) AS v
  FROM generate_series(1, 24) i, generate_series(1, 16) j GROUP BY i;
CREATE TABLE fhe_updates (client int, u encml.fhe_vector);
SELECT create_distributed_table('fhe_updates', 'client', shard_count => 8);
INSERT INTO fhe_updates SELECT i, encml.fhe_encrypt(v, :'ks') FROM fhe_plain;
SELECT count(DISTINCT get_shard_id_for_distribution_column('fhe_updates', client)) > 1 AS spread FROM fhe_updates;
-- Each shard sums its own updates (worker_partial_agg) and sends one partial sum; the
-- coordinator adds the partial sums (coord_combine_agg).
SELECT * FROM plan('SELECT encml.fhe_vector_sum(u) FROM fhe_updates');
-- The encrypted sum over every shard decrypts to the plaintext sum.
SELECT encml.fhe_decrypt((SELECT encml.fhe_vector_sum(u) FROM fhe_updates), :'sk')
     = (SELECT array_agg(s ORDER BY j) FROM (SELECT j, sum(v[j]) AS s FROM fhe_plain, generate_series(1, 16) j GROUP BY j) t)
       AS exact_sum;
-- Per group too, and a ciphertext stored twice on different shards is still refused when the
-- partial sums meet on the coordinator.
WITH enc AS (SELECT client % 3 AS g, encml.fhe_vector_sum(u) AS t FROM fhe_updates GROUP BY 1),
     plain AS (SELECT g, array_agg(s ORDER BY j) AS total
                 FROM (SELECT i % 3 AS g, j, sum(v[j]) AS s FROM fhe_plain, generate_series(1, 16) j GROUP BY 1, 2) q
                GROUP BY g)
SELECT count(*) AS groups, bool_and(encml.fhe_decrypt(enc.t, :'sk') = plain.total) AS groups_exact
  FROM enc JOIN plain USING (g);
INSERT INTO fhe_updates SELECT 1000 + client, u FROM fhe_updates WHERE client = 1;
SELECT get_shard_id_for_distribution_column('fhe_updates', 1) <> get_shard_id_for_distribution_column('fhe_updates', 1001) AS other_shard;
SELECT try($$SELECT encml.fhe_vector_sum(u) FROM fhe_updates$$) AS same_ciphertext_on_two_shards;
