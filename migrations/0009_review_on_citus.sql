-- patternd_review() of migration 0008, with the same graph and answers,
-- and no now() inside a CASE: Citus refuses a non-IMMUTABLE function in a
-- CASE of an UPDATE of a distributed table ("non-IMMUTABLE functions are
-- not allowed in CASE or COALESCE statements"), so the move to implemented
-- sets implemented_at in an UPDATE of its own.  Migration 0011
-- distributes it by its tenant argument on Citus.
CREATE OR REPLACE FUNCTION patternd_review(p_tenant text, p_id bigint, p_action text,
                                           p_expected text, p_actor text, p_reviewer text,
                                           p_notes text, p_reason text,
                                           OUT status text, OUT result text)
LANGUAGE plpgsql AS $fn$
DECLARE
    target text;
BEGIN
    SELECT automation_status INTO status FROM operation_patterns
    WHERE tenant_id = p_tenant AND id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        result := 'not_found';
        RETURN;
    END IF;
    target := CASE
        WHEN p_action = 'approve' AND status IN ('detected', 'candidate') THEN 'approved'
        WHEN p_action = 'reject' AND status IN ('detected', 'candidate') THEN 'rejected'
        WHEN p_action = 'implement' AND status = 'approved' THEN 'implemented'
        WHEN p_action = 'deprecate' AND status IN ('implemented', 'approved') THEN 'deprecated'
        WHEN p_action = 'reopen' AND status IN ('rejected', 'deprecated') THEN 'detected'
    END;
    IF status IS DISTINCT FROM p_expected OR target IS NULL THEN
        result := 'conflict';
        RETURN;
    END IF;
    IF p_action IN ('reject', 'deprecate') AND coalesce(btrim(p_reason), '') = '' THEN
        result := 'reason_required';
        RETURN;
    END IF;
    IF target = 'implemented' THEN
        UPDATE operation_patterns
        SET automation_status = target, status_changed_at = now(), implemented_at = now()
        WHERE tenant_id = p_tenant AND id = p_id;
    ELSE
        UPDATE operation_patterns
        SET automation_status = target, status_changed_at = now()
        WHERE tenant_id = p_tenant AND id = p_id;
    END IF;
    INSERT INTO pattern_reviews (tenant_id, pattern_id, from_status, to_status, actor, reviewer,
                                 notes, reason)
    VALUES (p_tenant, p_id, status, target, p_actor, p_reviewer, p_notes, p_reason);
    status := target;
    result := 'ok';
END
$fn$;
