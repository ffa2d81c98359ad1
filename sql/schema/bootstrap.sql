-- pg_encrypt_ml bootstrap: the key catalog. Runs before every generated object, in schema encml.
-- The catalog tables are readable by nobody but the extension owner; users see keys through the
-- views below, which never show key material (not even wrapped).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_key_admin') THEN
        CREATE ROLE encml_key_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_key_admin IS
    'pg_encrypt_ml: members may rotate, retire and destroy any key and rotate the master key';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_tenant_admin') THEN
        CREATE ROLE encml_tenant_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_tenant_admin IS
    'pg_encrypt_ml: members may create and drop tenants and manage tenant memberships';

-- Tenants and the roles that act for them (see encml.set_tenant).
CREATE TABLE tenants (
    name         text PRIMARY KEY CHECK (name <> ''),
    created_by   regrole NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set by encml.create_tenant_schema(): members get USAGE on it while they are members.
    schema_name  name,
    -- Set by encml.forget_tenant(): every key of the tenant was destroyed then, and no new one
    -- may be made for it.
    forgotten_at timestamptz
);
COMMENT ON TABLE tenants IS 'pg_encrypt_ml tenants';
CREATE TABLE tenant_members (
    tenant     text NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    member     regrole NOT NULL,
    granted_by regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, member)
);
COMMENT ON TABLE tenant_members IS 'pg_encrypt_ml: database roles (and, through inheritance, their members) acting for a tenant';

CREATE TABLE data_keys (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    tenant          text,
    purpose         text NOT NULL CHECK (purpose IN ('aead', 'deterministic', 'ore', 'hmac', 'fpe')),
    current_version integer NOT NULL DEFAULT 1 CHECK (current_version > 0),
    -- The role that called create_key or, for keys the extension manages, whose call created it.
    created_by      regrole NOT NULL,
    -- Keys made by encml.tenant_key() belong to their tenant, not to the member who happened to
    -- call first: only superusers, encml_key_admin and encml_tenant_admin administer them.
    managed         boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    rotated_at      timestamptz,
    destroyed_at    timestamptz
);
-- Names are unique per tenant among live keys; a destroyed key's name may be used again.
CREATE UNIQUE INDEX data_keys_tenant_name ON data_keys ((coalesce(tenant, '')), name)
    WHERE destroyed_at IS NULL;
CREATE INDEX data_keys_tenant ON data_keys (tenant) WHERE tenant IS NOT NULL;
COMMENT ON TABLE data_keys IS 'pg_encrypt_ml key catalog: one row per data key (material is in data_key_versions)';

CREATE TABLE data_key_versions (
    key_id                 uuid NOT NULL REFERENCES data_keys (id),
    version                integer NOT NULL CHECK (version > 0),
    status                 text NOT NULL CHECK (status IN ('active', 'retired', 'destroyed')),
    -- The version's 256-bit root wrapped by the master key (AES-256-GCM, docs/formats.md);
    -- NULL once the version is retired or destroyed.
    wrapped_key            bytea,
    -- Key check value of the master key that wraps it (or wrapped it, once erased: backups taken
    -- before the erasure are readable with that master key); never the master key itself.
    master_key_fingerprint text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    retired_at             timestamptz,
    PRIMARY KEY (key_id, version),
    CHECK ((status = 'active') = (wrapped_key IS NOT NULL)),
    CHECK (wrapped_key IS NULL OR master_key_fingerprint IS NOT NULL)
);
COMMENT ON TABLE data_key_versions IS 'pg_encrypt_ml key catalog: wrapped material of each data-key version';

-- AES-GCM encryptions with random nonces made under each data-key version, as recorded from the
-- counts in shared memory (docs/keys.md "Encryption counts"). Counted per node: not a Citus
-- reference table, and not tied to data_key_versions by a foreign key for that reason.
CREATE TABLE key_encryptions (
    key_id      uuid NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    encryptions bigint NOT NULL CHECK (encryptions >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, version)
);
COMMENT ON TABLE key_encryptions IS 'pg_encrypt_ml: AES-GCM encryptions recorded per data-key version (random-nonce limit 2^32)';
SELECT pg_catalog.pg_extension_config_dump('key_encryptions', '');

-- Per-key privileges (encml.grant_key): who may encrypt, decrypt or administer with a key,
-- beyond the implicit holders (superusers, encml_key_admin, the key's creator, tenant admins and,
-- for tenant_key() keys, the tenant's members). Membership is inherited as for GRANT.
CREATE TABLE key_grants (
    key_id     uuid NOT NULL REFERENCES data_keys (id),
    grantee    regrole NOT NULL,
    privilege  text NOT NULL CHECK (privilege IN ('encrypt', 'decrypt', 'admin')),
    granted_by regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, grantee, privilege)
);
COMMENT ON TABLE key_grants IS 'pg_encrypt_ml: per-key privileges granted with encml.grant_key';

-- Attribute-based decryption (docs/zero-trust.md): a key carries classification labels
-- (encml.label_key); decrypting with it needs a clearance (encml.grant_clearance) for every label
-- of the key, and the label's context conditions, if any, must hold at decryption.
CREATE TABLE key_labels (
    key_id     uuid NOT NULL REFERENCES data_keys (id),
    label      text NOT NULL CHECK (label ~ '^[a-z][a-z0-9_]*$'),
    labeled_by regrole NOT NULL,
    labeled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, label)
);
COMMENT ON TABLE key_labels IS 'pg_encrypt_ml: classification labels of keys (encml.label_key)';
CREATE TABLE clearances (
    grantee    regrole NOT NULL,
    label      text NOT NULL CHECK (label ~ '^[a-z][a-z0-9_]*$'),
    granted_by regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grantee, label)
);
COMMENT ON TABLE clearances IS 'pg_encrypt_ml: roles cleared to decrypt with keys of a label (encml.grant_clearance)';
CREATE TABLE clearance_conditions (
    label             text PRIMARY KEY CHECK (label ~ '^[a-z][a-z0-9_]*$'),
    -- The client must connect from one of these networks (a Unix-socket client matches none).
    client_networks   cidr[],
    -- The hour of the day (0-23, in time_zone) at decryption must be in this range.
    hours             int4range CHECK (hours IS NULL OR hours <@ int4range(0, 24)),
    time_zone         text NOT NULL DEFAULT 'UTC',
    -- The session's application_name must be one of these.
    application_names text[],
    set_by            regrole NOT NULL,
    set_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE clearance_conditions IS 'pg_encrypt_ml: context conditions checked when decrypting with keys of a label';

CREATE TABLE master_key_rotations (
    rotated_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    master_key_fingerprint text NOT NULL,
    keys_rewrapped         integer NOT NULL,
    rotated_by             regrole NOT NULL
);
COMMENT ON TABLE master_key_rotations IS 'pg_encrypt_ml: history of encml.rotate_master_key()';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'encml_privacy_admin') THEN
        CREATE ROLE encml_privacy_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE encml_privacy_admin IS
    'pg_encrypt_ml: members may set privacy budgets and read every analyst''s charges';

-- Privacy budgets per analyst and scope, and every charge (granted or refused). Written only by
-- the charge worker, in its own transaction, so charges survive the analyst's ROLLBACK.
CREATE TABLE privacy_budgets (
    analyst       regrole NOT NULL,
    scope         text NOT NULL CHECK (scope <> '' AND octet_length(scope) < 64),
    epsilon_total float8 NOT NULL CHECK (epsilon_total >= 0 AND epsilon_total < 'infinity'),
    delta_total   float8 NOT NULL DEFAULT 0 CHECK (delta_total >= 0 AND delta_total < 1),
    epsilon_spent float8 NOT NULL DEFAULT 0,
    delta_spent   float8 NOT NULL DEFAULT 0,
    set_by        regrole NOT NULL,
    set_at        timestamptz NOT NULL DEFAULT now(),
    -- How charges compose (docs/privacy.md "The budget"): pure (epsilon only), approx (epsilon
    -- and delta add up), zcdp (rho adds up against rho_total, the most that converts to
    -- (epsilon_total, delta_total / 2); noisy thresholds spend delta from the other half).
    accounting    text NOT NULL DEFAULT 'approx' CHECK (accounting IN ('pure', 'approx', 'zcdp')),
    rho_total     float8 CHECK (rho_total >= 0 AND rho_total < 'infinity'),
    rho_spent     float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (analyst, scope)
);
COMMENT ON TABLE privacy_budgets IS 'pg_encrypt_ml: privacy budget of each analyst and scope (pure, approximate or zCDP accounting)';
CREATE TABLE privacy_charges (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    analyst    regrole NOT NULL,
    scope      text NOT NULL,
    epsilon    float8 NOT NULL,
    delta      float8 NOT NULL,
    -- SHA-256 of the query text (the text may hold literals that are personal data).
    query_hash text NOT NULL,
    granted    boolean NOT NULL,
    -- Why a charge was refused, or that a superuser ran without a budget.
    note       text,
    -- The charge in rho under a zcdp budget (its epsilon and delta then say what was asked).
    rho        float8
);
CREATE INDEX privacy_charges_analyst ON privacy_charges (analyst, scope, charged_at);
COMMENT ON TABLE privacy_charges IS 'pg_encrypt_ml: every privacy charge of a dp aggregate, granted or refused';

REVOKE ALL ON data_keys, data_key_versions, key_encryptions, key_grants, key_labels, clearances, clearance_conditions,
    master_key_rotations, tenants, tenant_members,
    privacy_budgets, privacy_charges FROM PUBLIC;

-- pg_dump/pg_restore carry the catalog: a restored database decrypts with the same master key.
SELECT pg_catalog.pg_extension_config_dump('data_keys', '');
SELECT pg_catalog.pg_extension_config_dump('data_key_versions', '');
SELECT pg_catalog.pg_extension_config_dump('key_grants', '');
SELECT pg_catalog.pg_extension_config_dump('key_labels', '');
SELECT pg_catalog.pg_extension_config_dump('clearances', '');
SELECT pg_catalog.pg_extension_config_dump('clearance_conditions', '');
SELECT pg_catalog.pg_extension_config_dump('master_key_rotations', '');
SELECT pg_catalog.pg_extension_config_dump('tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_members', '');
SELECT pg_catalog.pg_extension_config_dump('privacy_budgets', '');
SELECT pg_catalog.pg_extension_config_dump('privacy_charges', '');
-- Identity sequences too: a restored ledger must not hand out ids it already holds.
SELECT pg_catalog.pg_extension_config_dump('privacy_charges_id_seq', '');

-- Both views show a role the keys without a tenant and those of the tenants it acts for (tenant
-- and key admins see all): one tenant's key names are not another tenant's business. The tables
-- are read with the view owner's rights, while current_user stays the querying role.
CREATE VIEW keys WITH (security_barrier) AS
SELECT k.id,
       k.name,
       k.tenant,
       k.purpose,
       k.current_version AS version,
       CASE WHEN k.destroyed_at IS NOT NULL THEN 'destroyed' ELSE 'active' END AS status,
       k.created_by,
       k.managed,
       k.created_at,
       k.rotated_at,
       k.destroyed_at,
       -- A destroyed key is fully erased only once the master key that wrapped it (and still
       -- unwraps it in older backups) is replaced: true until encml.rotate_master_key() moves to
       -- a different master key after the destroy. The old key must then leave the provider.
       (k.destroyed_at IS NOT NULL AND NOT EXISTS (
            SELECT FROM master_key_rotations r
             WHERE r.rotated_at > k.destroyed_at
               AND r.master_key_fingerprint NOT IN (
                   SELECT v.master_key_fingerprint FROM data_key_versions v
                    WHERE v.key_id = k.id AND v.master_key_fingerprint IS NOT NULL)))
           AS awaiting_master_key_rotation
  FROM data_keys k
 WHERE k.tenant IS NULL
    OR pg_catalog.pg_has_role(current_user, 'encml_tenant_admin', 'USAGE')
    OR pg_catalog.pg_has_role(current_user, 'encml_key_admin', 'USAGE')
    OR EXISTS (SELECT FROM tenant_members m
                WHERE m.tenant = k.tenant
                  AND pg_catalog.pg_has_role(current_user, m.member::oid, 'USAGE'));
COMMENT ON VIEW keys IS
    'pg_encrypt_ml data keys: id, name, tenant, purpose, current version and status; never key material';

CREATE VIEW key_versions WITH (security_barrier) AS
SELECT v.key_id, v.version, v.status, v.master_key_fingerprint, v.created_at, v.retired_at
  FROM data_key_versions v
 WHERE v.key_id IN (SELECT id FROM keys);   -- the keys this role may see
COMMENT ON VIEW key_versions IS
    'pg_encrypt_ml data-key versions with their status and the fingerprint of the master key wrapping them';

GRANT SELECT ON keys, key_versions TO PUBLIC;

-- Analysts see their own budgets and charges; privacy admins see all.
CREATE VIEW privacy_budget WITH (security_barrier) AS
SELECT b.analyst, b.scope, b.epsilon_total, b.epsilon_spent,
       greatest(b.epsilon_total - b.epsilon_spent, 0) AS epsilon_remaining,
       b.delta_total, b.delta_spent,
       -- Under zcdp, half of delta converts rho; noisy thresholds spend the other half.
       greatest(CASE WHEN b.accounting = 'zcdp' THEN b.delta_total / 2 ELSE b.delta_total END
                - b.delta_spent, 0) AS delta_remaining,
       b.set_by, b.set_at, b.accounting, b.rho_total, b.rho_spent
  FROM privacy_budgets b
 WHERE b.analyst::oid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    OR pg_catalog.pg_has_role(current_user, 'encml_privacy_admin', 'USAGE');
COMMENT ON VIEW privacy_budget IS 'pg_encrypt_ml: the calling analyst''s privacy budgets (all of them for privacy admins)';
CREATE VIEW privacy_ledger WITH (security_barrier) AS
SELECT c.id, c.charged_at, c.analyst, c.scope, c.epsilon, c.delta, c.query_hash, c.granted, c.note,
       c.rho
  FROM privacy_charges c
 WHERE c.analyst::oid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    OR pg_catalog.pg_has_role(current_user, 'encml_privacy_admin', 'USAGE');
COMMENT ON VIEW privacy_ledger IS 'pg_encrypt_ml: the calling analyst''s privacy charges (all of them for privacy admins)';
GRANT SELECT ON privacy_budget, privacy_ledger TO PUBLIC;
