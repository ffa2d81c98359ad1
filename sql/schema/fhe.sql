-- pg_encrypt_ml: homomorphic aggregation (docs/fhe.md). Key sets hold public material only;
-- rounds collect client updates and release each round's sum once, to the decrypting role only.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_fhe_admin') THEN
        CREATE ROLE encml_fhe_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_fhe_contributor') THEN
        CREATE ROLE encml_fhe_contributor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_fhe_decryptor') THEN
        CREATE ROLE encml_fhe_decryptor NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_fhe_admin IS
    'pg_encrypt_ml: registers FHE key sets, opens and closes aggregation rounds';
COMMENT ON ROLE encml_fhe_contributor IS
    'pg_encrypt_ml: submits encrypted updates to open aggregation rounds (cannot read them back)';
COMMENT ON ROLE encml_fhe_decryptor IS
    'pg_encrypt_ml: the secret key holder''s role: reads the sums of closed rounds, nothing else';

CREATE TABLE fhe_keysets (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> '' AND octet_length(name) < 64),
    kind            text NOT NULL CHECK (kind IN ('vector', 'uint32')),
    public_material bytea NOT NULL,
    created_by      regrole NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The CRS proofs of updates are made and checked with (pg_encrypt_ml-fhe keygen --proofs;
    -- docs/formats.md); NULL: rounds of the key set must be opened with unproven => true.
    proof_crs       bytea,
    CONSTRAINT fhe_keysets_proofs_vector CHECK (proof_crs IS NULL OR kind = 'vector')
);
COMMENT ON TABLE fhe_keysets IS 'pg_encrypt_ml: FHE key sets (public material only; the secret key never enters the database)';

CREATE TABLE fhe_rounds (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    keyset            uuid NOT NULL REFERENCES fhe_keysets,
    dim               integer NOT NULL CHECK (dim > 0),
    value_bits        smallint NOT NULL,
    frac_bits         smallint NOT NULL,
    message_bits      smallint NOT NULL,
    min_contributions integer NOT NULL CHECK (min_contributions >= 2),
    max_contributions integer NOT NULL CHECK (max_contributions >= min_contributions),
    contributions     integer NOT NULL DEFAULT 0,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_by         regrole NOT NULL,
    opened_at         timestamptz NOT NULL DEFAULT now(),
    closed_at         timestamptz,
    -- The released sum: set once, when the round closes.
    total             fhe_vector,
    CHECK ((status = 'closed') = (total IS NOT NULL)),
    -- Takes proven updates only (its key set has a CRS); false: opened with unproven => true.
    proven            boolean NOT NULL DEFAULT false,
    -- The only role the sum is released to (NULL: every member of encml_fhe_decryptor).
    decryptor         regrole,
    -- A differentially private sum (fhe_close_round with dp_epsilon, dp_delta): the privacy
    -- loss each read of it is charged, and the noise's standard deviation in values.
    dp_epsilon        double precision,
    dp_delta          double precision,
    dp_sigma          double precision,
    CONSTRAINT fhe_rounds_dp CHECK ((dp_epsilon IS NULL) = (dp_delta IS NULL)
                                    AND (dp_epsilon IS NULL) = (dp_sigma IS NULL))
);
COMMENT ON TABLE fhe_rounds IS 'pg_encrypt_ml: aggregation rounds and their released sums';

CREATE TABLE fhe_contributions (
    round        bigint NOT NULL REFERENCES fhe_rounds,
    keyset       uuid NOT NULL,
    -- The ciphertext's first mask words: a replayed update is refused in every round of the key set.
    fingerprint  bytea NOT NULL,
    contributor  regrole NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    -- Cleared when the round closes: only the sum is kept.
    update       fhe_vector,
    UNIQUE (keyset, fingerprint)
);
CREATE INDEX fhe_contributions_round ON fhe_contributions (round);
COMMENT ON TABLE fhe_contributions IS 'pg_encrypt_ml: encrypted updates of open rounds (readable by nobody but the extension)';

REVOKE ALL ON fhe_keysets, fhe_rounds, fhe_contributions FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('fhe_keysets', '');
SELECT pg_catalog.pg_extension_config_dump('fhe_rounds', '');
SELECT pg_catalog.pg_extension_config_dump('fhe_rounds_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('fhe_contributions', '');

-- Public key material is public: clients download it from here.
CREATE VIEW fhe_key_sets AS
SELECT id, name, kind, public_material, created_by, created_at, proof_crs FROM fhe_keysets;
COMMENT ON VIEW fhe_key_sets IS 'pg_encrypt_ml: registered FHE key sets with their public material (for clients)';
GRANT SELECT ON fhe_key_sets TO PUBLIC;

-- What a client needs to encrypt for a round, and how far it is; never a ciphertext.
CREATE VIEW fhe_round_status AS
SELECT id, keyset, dim, value_bits, frac_bits, message_bits, min_contributions,
       max_contributions, contributions, status, opened_by, opened_at, closed_at, proven,
       decryptor, dp_epsilon, dp_delta, dp_sigma
  FROM fhe_rounds;
COMMENT ON VIEW fhe_round_status IS 'pg_encrypt_ml: aggregation rounds: parameters, contribution count and status (no ciphertexts)';
GRANT SELECT ON fhe_round_status TO encml_fhe_admin, encml_fhe_contributor, encml_fhe_decryptor;

-- fhe_vector_sum: the state is an fhe_sum_state (the encrypted total and the fingerprints of
-- the ciphertexts added), a real type so that Citus sums on the shards (src/api/fhe.rs).
CREATE TYPE fhe_sum_state;
CREATE FUNCTION fhe_sum_state_in(cstring) RETURNS fhe_sum_state
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_state_in';
CREATE FUNCTION fhe_sum_state_out(fhe_sum_state) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_sum_state_out';
CREATE TYPE fhe_sum_state (
    INPUT = fhe_sum_state_in, OUTPUT = fhe_sum_state_out,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
COMMENT ON TYPE fhe_sum_state IS 'pg_encrypt_ml: running state of fhe_vector_sum (encrypted total and fingerprints of the added ciphertexts; docs/fhe.md)';
CREATE FUNCTION fhe_vector_sum_trans(fhe_sum_state, fhe_vector) RETURNS fhe_sum_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_vector_sum_trans';
CREATE FUNCTION fhe_vector_sum_combine(fhe_sum_state, fhe_sum_state) RETURNS fhe_sum_state
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_vector_sum_combine';
CREATE FUNCTION fhe_vector_sum_final(fhe_sum_state) RETURNS fhe_vector
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_fhe_vector_sum_final';
CREATE AGGREGATE fhe_vector_sum(fhe_vector) (
    SFUNC = fhe_vector_sum_trans, STYPE = fhe_sum_state, FINALFUNC = fhe_vector_sum_final,
    COMBINEFUNC = fhe_vector_sum_combine, PARALLEL = SAFE
);
