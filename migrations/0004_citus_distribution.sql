-- On a Citus cluster, distribute every tenant table by tenant_id, co-located
-- (docs/deployments.md).  On plain PostgreSQL (no citus extension) this does nothing.
--
-- Every primary and unique key starts with tenant_id and every statement
-- patternd runs filters on one tenant, so each batch's rows go to the one
-- worker node that holds its tenant's shard group.  Co-location (colocate_with => 'workflows')
-- puts the shards of one tenant of all four tables on the same node, so the
-- write path's CTE joins them locally.
--
-- create_distributed_table copies the tables' row-level security, policies,
-- grants, generated and identity columns to every shard; roles created by
-- 0002 while the citus extension existed were propagated to every node.  The
-- extension must therefore exist before `patternd migrate` first runs:
-- CREATE EXTENSION citus, add the worker nodes, then migrate.
--
-- The guard on pg_dist_partition makes the file safe to run where a user had
-- distributed the tables by hand, as README once suggested.
--
-- schema_migrations stays a local table on the coordinator: only migrate and
-- /readyz read it, both there, and the advisory lock that serializes
-- migrators is the coordinator's.  As a reference table every migration would
-- commit with two-phase commit over all nodes, for nothing.
DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['workflows', 'operation_patterns', 'pattern_occurrences', 'api_keys']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            IF t = 'workflows' THEN
                PERFORM create_distributed_table(t, 'tenant_id');
            ELSE
                PERFORM create_distributed_table(t, 'tenant_id', colocate_with => 'workflows');
            END IF;
        END IF;
    END LOOP;
END
$$;
