-- The service checks API keys against a copy of every active key that it
-- holds in memory (src/http/auth.c), so that no request waits on a key
-- lookup and a flood of made-up keys costs the database nothing: the copy
-- is reloaded on a timer, never because of what a client sent.  It is read
-- in one statement across tenants, so the service role may now read every
-- row of api_keys: tenants, key ids, salts and salted hashes of 256-bit
-- secrets, nothing that lets anyone use a key.  It still writes none
-- (migration 0003); every other table keeps the tenant policy alone.
CREATE POLICY service_reads_every_key ON api_keys FOR SELECT TO patternd_service USING (true);
