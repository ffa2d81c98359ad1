-- Dynamic masking rules (src/api/masking/views.rs, docs/masking.md): which column of which table shows
-- which mask to whom. Written only through encml.set_masking_rule (the table's owner); read by
-- encml.apply_masking, which generates the <table>_masked view.
CREATE TABLE masking_rules (
    tbl             regclass NOT NULL,
    col             name NOT NULL,
    mask            text NOT NULL,
    unmasked_roles  regrole[] NOT NULL DEFAULT '{}',
    set_by          regrole NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now(),
    -- apply_masking(tbl, stored => true): the generated column holding the mask, and the mask
    -- it was generated with (a changed rule regenerates it).
    stored_as       name,
    stored_mask     text,
    PRIMARY KEY (tbl, col)
);
REVOKE ALL ON masking_rules FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('masking_rules', '');
COMMENT ON TABLE masking_rules IS 'pg_encrypt_ml: masking rules per column (set_masking_rule; applied by apply_masking)';

-- Whether the current user sees unmasked values: a superuser, or a member of one of the roles.
-- Views call it once per query (as an InitPlan), not per row.
-- Pinned and qualified: a reader's own `=(name, name)` ahead of pg_catalog in its search_path
-- returned true for every role (issue 27).
CREATE FUNCTION masking_unmasked(roles regrole[]) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT r.rolsuper FROM pg_catalog.pg_roles r
             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
        OR EXISTS (SELECT FROM pg_catalog.unnest(roles) u(role)
                    WHERE pg_catalog.pg_has_role(CURRENT_USER, u.role, 'MEMBER'))
$$;
COMMENT ON FUNCTION masking_unmasked(regrole[]) IS
    'pg_encrypt_ml: whether the current user is a superuser or a member of one of the roles (masked views use it once per query)';

-- The rule setter (src/api/masking/views.rs); runs as the caller, whose ownership of the table it checks.
CREATE FUNCTION set_masking_rule(tbl regclass, col name, mask text, unmasked_roles regrole[] DEFAULT '{}')
RETURNS void LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'set_masking_rule_wrapper';
COMMENT ON FUNCTION set_masking_rule(regclass, name, text, regrole[]) IS
    'Sets the mask of a column (pan, pan6, email, phone, year, null, partial(prefix, suffix[, ''pad''])) and the roles that see it unmasked; the table''s owner only; apply with apply_masking';
