-- A model registry done properly: one data key per model (wrapped by the master key, bound to
-- the team's tenant), weights as encrypted tensors (4 bytes per float32, bound to their row),
-- checkpoints as encrypted large objects (any size, chunked), metadata jsonb in clear so it can
-- be queried and indexed, tenant isolation by row-level security, and an audit trail.
-- Run as a superuser in a fresh database: psql -v ON_ERROR_STOP=1 -f examples/model_registry.sql
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_encrypt_ml;
SET client_min_messages = warning;

\echo '== Two ML teams share the registry as tenants'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_vision') THEN CREATE ROLE registry_vision; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_nlp') THEN CREATE ROLE registry_nlp; END IF;
END
$$;
SELECT encml.create_tenant(t) FROM (VALUES ('vision'), ('nlp')) AS v(t)
 WHERE NOT EXISTS (SELECT FROM encml.tenants WHERE name = t);
SELECT encml.grant_tenant('vision', 'registry_vision'), encml.grant_tenant('nlp', 'registry_nlp');

CREATE TABLE models (
    model_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    name      text NOT NULL,
    key_id    uuid NOT NULL,          -- the model's own data key
    metadata  jsonb NOT NULL,         -- algorithm, created_at, metrics: in clear, indexable
    UNIQUE (tenant_id, name)
);
CREATE INDEX ON models USING gin (metadata jsonb_path_ops);
CREATE TABLE model_parameters (
    model_id  bigint REFERENCES models,
    tenant_id text NOT NULL,
    layer     text,
    weights   encml.enc_bytea NOT NULL,   -- encml.encrypt_tensor(real[], key, 'model_id/layer')
    PRIMARY KEY (model_id, layer)
);
CREATE TABLE model_checkpoints (
    model_id   bigint REFERENCES models,
    tenant_id  text NOT NULL,
    step       int,
    checkpoint oid NOT NULL,              -- encml.lo_encrypt(): a large object, chunked
    PRIMARY KEY (model_id, step)
);
-- Rows of other tenants are invisible and cannot be written; the owner is subject to it too.
SELECT encml.enable_tenant_isolation(t)
  FROM unnest(ARRAY['models', 'model_parameters', 'model_checkpoints']::regclass[]) AS t;
-- Audit every change; weights are classified secret (redacted to keyed hashes in the log).
SELECT encml.classify('model_parameters', 'weights', 'secret');
SELECT encml.audit_enable(t) FROM unnest(ARRAY['models', 'model_parameters', 'model_checkpoints']::regclass[]) AS t;
GRANT SELECT, INSERT, UPDATE, DELETE ON models, model_parameters, model_checkpoints TO registry_vision, registry_nlp;

-- Registering a model creates its key ('model:' || name, bound to the current tenant).
CREATE FUNCTION register_model(name text, metadata jsonb) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO models (tenant_id, name, key_id, metadata)
    VALUES (encml.current_tenant(), name,
            encml.create_key('model:' || encml.current_tenant() || ':' || name, 'aead', encml.current_tenant()),
            metadata || jsonb_build_object('created_at', now()))
    RETURNING model_id
$$;

\echo '== The vision team registers a model and stores its weights and a checkpoint'
SET ROLE registry_vision;
SELECT encml.set_tenant('vision');
SELECT register_model('resnet-tiny', '{"algorithm": "resnet", "framework": "pytorch", "metrics": {"top1": 0.712}}') AS model \gset
INSERT INTO model_parameters (model_id, tenant_id, layer, weights)
SELECT m.model_id, m.tenant_id, l.layer,
       encml.encrypt_tensor(l.w, m.key_id, m.model_id || '/' || l.layer)
  FROM models m,
       (VALUES ('conv1/kernel', array_fill(0.25::real, ARRAY[8, 3, 3, 3])),
               ('conv1/bias',   '{0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8}'::real[]),
               ('fc/kernel',    array_fill(-0.5::real, ARRAY[10, 8]))) AS l(layer, w)
 WHERE m.model_id = :model;
-- A checkpoint (here 3 MB of bytes standing in for torch.save output), encrypted chunk by chunk.
SELECT lo_from_bytea(0, decode(repeat(md5('checkpoint'), 98304), 'hex')) AS raw_checkpoint \gset
INSERT INTO model_checkpoints SELECT :model, 'vision', 1000, encml.lo_encrypt(:raw_checkpoint, key_id)
  FROM models WHERE model_id = :model;
SELECT lo_unlink(:raw_checkpoint);

\echo '== Metadata is plain: query it; the weights show only dtype and shape without the key'
SELECT name, metadata->>'algorithm' AS algorithm, metadata#>>'{metrics,top1}' AS top1
  FROM models WHERE metadata @> '{"framework": "pytorch"}';
SELECT p.layer, i.dtype, i.shape, octet_length(p.weights::bytea) AS bytes
  FROM model_parameters p, encml.tensor_info(p.weights) i ORDER BY p.layer;

\echo '== Loading: weights with their shape; one 64 KB shard of the checkpoint without the rest'
SELECT layer, array_dims(w) AS dims, (SELECT sum(x) FROM unnest(w) AS x) AS total
  FROM (SELECT layer, encml.decrypt_tensor_real(weights, model_id || '/' || layer) AS w
          FROM model_parameters) AS p ORDER BY layer;
SELECT octet_length(encml.lo_decrypt_range(checkpoint, 1048576, 65536)) AS shard_bytes,
       encml.lo_decrypt_range(checkpoint, 1048576, 16) = substring(decode(repeat(md5('checkpoint'), 98304), 'hex') from 1048577 for 16) AS shard_matches
  FROM model_checkpoints WHERE model_id = :model;

\echo '== The nlp team sees no vision rows, and a copied ciphertext does not open for it'
RESET ROLE;
SELECT weights AS stolen FROM model_parameters WHERE layer = 'conv1/bias' \gset
SET ROLE registry_nlp;
SELECT encml.set_tenant('nlp');
SELECT count(*) AS vision_models_visible FROM models;
\set ON_ERROR_STOP 0
SELECT encml.decrypt_tensor_real(:'stolen'::encml.enc_bytea, :'model' || '/conv1/bias');
\set ON_ERROR_STOP 1
RESET ROLE;
SELECT encml.reset_tenant();

\echo '== The audit trail: who changed what, weights redacted'
SELECT operation, table_name, effective_role, tenant,
       coalesce(new_row->>'weights', '') LIKE 'hmac:%' AS weights_redacted
  FROM encml.audit_log
 WHERE table_name LIKE '%model%' AND kind = 'row' ORDER BY id DESC LIMIT 4;

\echo '== Retiring the model: destroying its key shreds weights and checkpoints at once'
SELECT encml.set_tenant('vision');
SELECT encml.destroy_key(key_id) AS versions_erased FROM models WHERE model_id = :model;
\set ON_ERROR_STOP 0
SELECT encml.decrypt_tensor_real(weights, model_id || '/' || layer) FROM model_parameters LIMIT 1;
\set ON_ERROR_STOP 1
SELECT encml.reset_tenant();
