-- Least privilege for the service role.
--
-- patternd serve only looks keys up: it never creates or revokes one.
-- With INSERT and UPDATE on api_keys, a leaked service password could mint
-- a key for any tenant or un-revoke a revoked one (the row policy checks
-- only patternd.tenant, a setting any session may set to any tenant).
-- From here on keys are created and revoked by `patternd keys`, connected
-- as the tables' owner or an administrator, and the service role keeps
-- SELECT alone.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON api_keys FROM patternd_service;
