-- Citus: each batch, review and threshold move runs whole on the worker
-- node that holds its tenant.
--
-- patternd_move_candidates() of migration 0008, with the same moves and
-- audit rows, in two statements instead of one with a data-modifying WITH:
-- inside a call that Citus delegates to a worker, each statement must run
-- on the tenant's shards alone, which a chain of data-modifying CTEs does
-- not.  Then the three functions are distributed by their tenant argument
-- (nothing changes without Citus).

CREATE OR REPLACE FUNCTION patternd_move_candidates(p_tenant text, p_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    th_n bigint;
    th_c double precision;
    th_s numeric;
    m_ids bigint[];
    m_to text[];
BEGIN
    SELECT min_occurrences, min_confidence, min_savings INTO th_n, th_c, th_s
    FROM review_thresholds WHERE tenant_id = p_tenant;
    IF NOT FOUND THEN
        th_n := 5;
        th_c := 70;
        th_s := 1.00;
    END IF;
    -- Two statements, not one with a data-modifying WITH: each then runs on
    -- the tenant's shards alone, as Citus needs inside a delegated call.
    WITH moves AS (
        UPDATE operation_patterns p
        SET automation_status = CASE WHEN p.automation_status = 'detected' THEN 'candidate'
                                     ELSE 'detected' END,
            status_changed_at = now()
        WHERE p.tenant_id = p_tenant AND (p_ids IS NULL OR p.id = ANY (p_ids))
          AND p.automation_status IN ('detected', 'candidate')
          AND p.automation_status <> CASE
                  WHEN p.occurrence_count >= th_n AND p.confidence_score >= th_c
                       AND p.potential_monthly_savings >= th_s THEN 'candidate'
                  ELSE 'detected' END
        RETURNING p.id, p.automation_status
    )
    SELECT array_agg(id), array_agg(automation_status) INTO m_ids, m_to FROM moves;
    IF m_ids IS NULL THEN
        RETURN 0;
    END IF;
    INSERT INTO pattern_reviews (tenant_id, pattern_id, from_status, to_status, actor, reason)
    SELECT p_tenant, m.id,
           CASE WHEN m.to_status = 'candidate' THEN 'detected' ELSE 'candidate' END, m.to_status,
           'patternd',
           format('%s the thresholds: occurrences >= %s, confidence >= %s, savings >= %s',
                  CASE WHEN m.to_status = 'candidate' THEN 'meets' ELSE 'no longer meets' END,
                  th_n, th_c, th_s)
    FROM unnest(m_ids, m_to) AS m(id, to_status);
    RETURN cardinality(m_ids);
END
$fn$;

-- On Citus, each of these functions runs whole on the worker node that
-- holds its tenant's shards (the tenant is its first argument, and the
-- tables are co-located by tenant): one node, one transaction there, no
-- two-phase commit.  force_delegation delegates the call inside a
-- transaction block too, which is how patternd calls it (BEGIN, SET LOCAL
-- patternd.tenant, the call, COMMIT).
DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_function(f, '$1', colocate_with => 'workflows',
                                            force_delegation => true)
        FROM unnest(ARRAY[
            'patternd_write_batch(text, bigint, text[], bigint[], bigint[], boolean[], text[],'
            ' text[], bigint[], numeric[], bigint[], boolean[], bigint[], bigint[], text[],'
            ' bigint[], numeric[], numeric[], bigint[], numeric[], numeric[], bigint[], numeric[],'
            ' bigint[], bigint[], text[], text[], integer[], bigint[], numeric[], boolean)',
            'patternd_move_candidates(text, bigint[])',
            'patternd_review(text, bigint, text, text, text, text, text, text)'
        ]::regprocedure[]) AS f;
    END IF;
END
$citus$;
