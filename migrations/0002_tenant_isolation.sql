-- Tenant isolation enforced by PostgreSQL itself, and API keys.
--
-- Every table is under row-level security, enabled and FORCEd (so that it
-- binds the tables' owner too), with one policy: a row is visible, and may
-- be written, only while the transaction's patternd.tenant setting names its
-- tenant.  patternd sets it per transaction with
-- set_config('patternd.tenant', T, true), i.e. SET LOCAL.  With no tenant
-- set, nothing is visible and nothing can be written.
--
-- The service connects as a role that is a member of patternd_service and
-- neither owns the tables nor is a superuser or BYPASSRLS (superusers
-- bypass every policy): then a bug in C cannot read or write another
-- tenant's rows.  Operators create their login role with e.g.
--   CREATE ROLE patternd_app LOGIN PASSWORD '...' IN ROLE patternd_service;
-- Administration (migrate, report across tenants) runs as the owner or an
-- administrator.

CREATE TABLE api_keys (
    tenant_id  text        NOT NULL,
    key_id     text        NOT NULL,          -- 16 hex digits, shown by `patternd keys list`
    salt       bytea       NOT NULL,          -- 32 random bytes
    hash       bytea       NOT NULL,          -- BLAKE2b-256 of the secret, keyed by salt
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,                   -- NULL while the key is active
    PRIMARY KEY (tenant_id, key_id)
);

-- Roles are cluster-wide: another database of the cluster (or a migrator
-- running at the same moment) may have created it already.
DO $$
BEGIN
    CREATE ROLE patternd_service NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

ALTER TABLE workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflows
    USING (tenant_id = current_setting('patternd.tenant', true))
    WITH CHECK (tenant_id = current_setting('patternd.tenant', true));

ALTER TABLE operation_patterns ENABLE ROW LEVEL SECURITY;
ALTER TABLE operation_patterns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON operation_patterns
    USING (tenant_id = current_setting('patternd.tenant', true))
    WITH CHECK (tenant_id = current_setting('patternd.tenant', true));

ALTER TABLE pattern_occurrences ENABLE ROW LEVEL SECURITY;
ALTER TABLE pattern_occurrences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pattern_occurrences
    USING (tenant_id = current_setting('patternd.tenant', true))
    WITH CHECK (tenant_id = current_setting('patternd.tenant', true));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = current_setting('patternd.tenant', true))
    WITH CHECK (tenant_id = current_setting('patternd.tenant', true));

-- What the service does, and nothing more: no DELETE, no DDL.
GRANT USAGE ON SCHEMA public TO patternd_service;
GRANT SELECT, INSERT, UPDATE ON workflows, operation_patterns, pattern_occurrences, api_keys
    TO patternd_service;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO patternd_service;
GRANT SELECT ON schema_migrations TO patternd_service; -- /readyz checks the schema is current
