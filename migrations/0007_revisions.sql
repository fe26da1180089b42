-- Revisions (docs/spec.md §3.4): the latest version of every workflow
-- decides, by updated_at, and only a final version counts.
--
-- The ledger row of a workflow now holds its current version and what that
-- version adds to its patterns, so that a revision can take the old
-- contribution away exactly before adding the new one:
--
--   version      updated_at in microseconds since the epoch; NULL when the
--                record had none (the lowest version)
--   digest       a hash of the version's content as patternd reads it, to
--                tell a duplicate from a conflict at the same version
--   counted      the version is final (status not pending or running): its
--                occurrences count
--   revised      the version came in as a revision (what a retried batch
--                reports, see batch_token)
--   tokens, cost, dur_ms, err, retry, start_us
--                the version's numbers, as the statistics add them up
--
-- Rows recorded before this migration have no version, no digest and no
-- numbers (NULL): a later record with an updated_at revises them, moving
-- their occurrences exactly; their old numbers were never stored, so what
-- they added to the sums stays there.  batch_token now names the batch that
-- wrote the current version.
--
-- operation_patterns keeps a pattern whose last occurrence a revision took
-- away, with occurrence_count 0 and every statistic 0, so its id and
-- history stay: the generated statistics are rebuilt to allow n = 0, and
-- occurrence_count loses its CHECK, because the batch function sends net
-- changes, which may be negative, through INSERT ... ON CONFLICT, whose
-- proposed row PostgreSQL checks before it finds the conflict.
--
-- Each batch is written by one call of patternd_write_batch() below: see
-- src/db/store.c for what a batch does and in which order.

-- On Citus, the function below is created in the transaction that altered
-- distributed tables, which Citus allows over one connection per node only.
-- (Elsewhere this only sets a placeholder setting, until the transaction ends.)
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- Citus passes some commands on to its worker nodes as the text of the whole
-- statement string, which fails when the string holds several statements, as
-- a migration does (see 0005): each command runs through EXECUTE, as a string
-- of its own.
DO $ddl$
BEGIN
    EXECUTE $sql$
        ALTER TABLE workflows
            ADD COLUMN version  bigint,
            ADD COLUMN digest   bigint,
            ADD COLUMN counted  boolean NOT NULL DEFAULT true,
            ADD COLUMN revised  boolean NOT NULL DEFAULT false,
            ADD COLUMN tokens   bigint,
            ADD COLUMN cost     numeric,
            ADD COLUMN dur_ms   bigint,
            ADD COLUMN err      boolean,
            ADD COLUMN retry    bigint,
            ADD COLUMN start_us bigint
    $sql$;
    EXECUTE $sql$
        ALTER TABLE operation_patterns DROP CONSTRAINT operation_patterns_occurrence_count_check
    $sql$;
    EXECUTE $sql$
        ALTER TABLE operation_patterns
            DROP COLUMN avg_tokens_with_llm,
            DROP COLUMN avg_tokens_with_tool,
            DROP COLUMN avg_cost_with_llm,
            DROP COLUMN avg_cost_with_tool,
            DROP COLUMN potential_monthly_savings,
            DROP COLUMN confidence_score
    $sql$;
    -- (avg_llm - avg_tool) * m, with m = n, scaled down to 30 days when the
    -- event times span more than that.
    EXECUTE $sql$
        ALTER TABLE operation_patterns
            ADD COLUMN avg_tokens_with_llm bigint GENERATED ALWAYS AS (
                CASE WHEN occurrence_count > 0 THEN floor(sum_tokens / occurrence_count) ELSE 0 END) STORED,
            ADD COLUMN avg_tokens_with_tool bigint GENERATED ALWAYS AS (
                CASE WHEN occurrence_count > 0
                     THEN trunc(floor(sum_tokens / occurrence_count) * 0.05) ELSE 0 END) STORED,
            ADD COLUMN avg_cost_with_llm numeric GENERATED ALWAYS AS (
                CASE WHEN occurrence_count > 0 THEN sum_cost / occurrence_count ELSE 0 END) STORED,
            ADD COLUMN avg_cost_with_tool numeric GENERATED ALWAYS AS (
                CASE WHEN occurrence_count > 0 THEN sum_cost / occurrence_count * 0.05 ELSE 0 END) STORED,
            ADD COLUMN potential_monthly_savings numeric GENERATED ALWAYS AS (
                CASE WHEN occurrence_count <= 0 THEN 0 ELSE
                (sum_cost / occurrence_count - sum_cost / occurrence_count * 0.05)
                * CASE
                    WHEN first_event_at IS NULL
                         OR extract(epoch FROM last_event_at - first_event_at) <= 2592000
                        THEN occurrence_count::numeric
                    ELSE occurrence_count * 2592000
                         / extract(epoch FROM last_event_at - first_event_at)
                  END END) STORED,
            ADD COLUMN confidence_score double precision GENERATED ALWAYS AS (
                CASE WHEN occurrence_count <= 0 THEN 0 ELSE
                least(100, greatest(0,
                    CASE WHEN occurrence_count >= 10 THEN 40
                         WHEN occurrence_count >= 5 THEN 30
                         WHEN occurrence_count >= 3 THEN 20
                         ELSE 10 END
                  + CASE WHEN duration_n < 2 THEN 15
                         WHEN duration_n * sum_duration_ms_sq - sum_duration_ms * sum_duration_ms
                              < 100000000::numeric * duration_n * duration_n THEN 30
                         WHEN duration_n * sum_duration_ms_sq - sum_duration_ms * sum_duration_ms
                              < 1000000000::numeric * duration_n * duration_n THEN 20
                         ELSE 10 END
                  + CASE WHEN error_n = 0 AND sum_retry = 0 THEN 30
                         WHEN error_n < occurrence_count AND sum_retry < 2 * occurrence_count THEN 20
                         WHEN error_n < 3 * occurrence_count THEN 10
                         ELSE 5 END)) END) STORED
    $sql$;
    -- pattern_occurrences shows the occurrences that count: those of final versions.
    EXECUTE $sql$
        CREATE OR REPLACE VIEW pattern_occurrences WITH (security_invoker = true) AS
        SELECT w.id * 8 + s.ordinal - 1 AS id,
               w.tenant_id,
               p.id AS pattern_id,
               w.workflow_id,
               100.0::double precision AS similarity_score,
               w.characteristics::jsonb AS matched_characteristics,
               w.ingested_at AS detected_at
        FROM workflows w
        CROSS JOIN LATERAL unnest(w.signatures) WITH ORDINALITY AS s(signature, ordinal)
        JOIN operation_patterns p ON p.tenant_id = w.tenant_id AND p.pattern_signature = s.signature
        WHERE w.counted
    $sql$;
    -- The service role updates ledger rows now (revisions): it had INSERT and
    -- SELECT on the table rebuilt by migration 0005.
    EXECUTE $sql$
        GRANT UPDATE ON workflows TO patternd_service
    $sql$;
END
$ddl$;

-- One batch of one tenant: the distinct workflows of the batch (the caller
-- keeps one record per workflow_id: the highest version, the first of
-- equals), in workflow_id byte order, as parallel arrays.  Returns one
-- letter per input element, in order:
--   n  new: recorded now           r  revised: replaced an older version
--   s  stale: an older version     d  duplicate: the same version, same content
--   c  conflict: the same version, other content (nothing changes)
--   N, R  what an earlier attempt of this batch (same token) recorded
--         before its connection was lost: nothing changes now
-- and how many pattern rows this batch created.  Every statement runs with
-- the caller's rights, so row-level security applies.
CREATE FUNCTION patternd_write_batch(
    p_tenant text, p_token bigint, p_wids text[], p_versions bigint[], p_digests bigint[],
    p_counted boolean[], p_sigs text[], p_chars text[], p_tokens bigint[], p_costs numeric[],
    p_durs bigint[], p_errs boolean[], p_retries bigint[], p_starts bigint[],
    g_sigs text[], g_n bigint[], g_tokens numeric[], g_costs numeric[], g_dur_n bigint[],
    g_durs numeric[], g_dur_sqs numeric[], g_errs bigint[], g_retries numeric[], g_firsts bigint[],
    g_lasts bigint[], g_typicals text[], p_try_plain boolean,
    OUT outcomes text, OUT new_patterns bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    kinds "char"[];
    -- The recorded versions of the batch's workflows (only those recorded).
    s_wids text[];
    s_versions bigint[];
    s_digests bigint[];
    s_tokens bigint[];
    s_revised boolean[];
    -- Of the recorded versions that revisions replace, and that counted:
    -- their input position, signatures and numbers.
    o_i integer[];
    o_sigs text[];
    o_tokens bigint[];
    o_costs numeric[];
    o_durs bigint[];
    o_errs boolean[];
    o_retries bigint[];
    o_starts bigint[];
    n_rows bigint;
    summed boolean; -- the g_* sums are the batch's changes (every workflow is new)
    -- Signatures that lost an occurrence: the earliest and latest start
    -- taken away, and the earliest and latest of those that still count.
    e_sigs text[];
    e_lo timestamptz[];
    e_hi timestamptz[];
    e_first timestamptz[];
    e_last timestamptz[];
BEGIN
    -- 0. When the caller expects every workflow to be new (none of its
    --    recent batches met a recorded one), a plain insert of the whole
    --    batch: one index search per row.  A recorded workflow fails it
    --    (unique violation, rolled back to the block's start) and the batch
    --    takes the general path below.
    IF p_try_plain THEN
        BEGIN
            WITH ins AS (
                INSERT INTO workflows (tenant_id, workflow_id, batch_token, version, digest,
                                       counted, revised, signatures, characteristics, tokens,
                                       cost, dur_ms, err, retry, start_us)
                SELECT p_tenant, u.wid, p_token, u.ver, u.dig, u.cnt, false,
                       string_to_array(u.sig, ' '), u.chr, u.tok, u.cost, u.dur, u.err, u.rty,
                       u.st
                FROM unnest(p_wids, p_versions, p_digests, p_counted, p_sigs, p_chars, p_tokens,
                            p_costs, p_durs, p_errs, p_retries, p_starts)
                     AS u(wid, ver, dig, cnt, sig, chr, tok, cost, dur, err, rty, st)
                RETURNING 1)
            SELECT count(*) INTO n_rows FROM ins;
            kinds := array_fill('n'::"char", ARRAY[cardinality(p_wids)]);
        EXCEPTION WHEN unique_violation THEN
            kinds := NULL;
        END;
    END IF;

    IF kinds IS NULL THEN
        -- 1. Lock the batch's recorded workflows, in lock order (byte order of
        --    workflow_id, as the primary key's index returns them), and read
        --    the versions they hold.
        SELECT array_agg(workflow_id), array_agg(version), array_agg(digest),
               array_agg(batch_token), array_agg(revised)
        INTO s_wids, s_versions, s_digests, s_tokens, s_revised
        FROM (SELECT workflow_id, version, digest, batch_token, revised FROM workflows
              WHERE tenant_id = p_tenant AND workflow_id = ANY (p_wids)
              ORDER BY workflow_id FOR UPDATE) s;

        -- 2. What each record is to the recorded version.  Both lists are in
        --    workflow_id order, so they are matched by a join on the id.
        IF s_wids IS NULL THEN
            kinds := array_fill('n'::"char", ARRAY[cardinality(p_wids)]);
        ELSE
            SELECT array_agg(CASE
                       WHEN s.wid IS NULL THEN 'n'
                       WHEN s.tok = p_token AND s.dig = u.dig
                           THEN CASE WHEN s.rev THEN 'R' ELSE 'N' END
                       WHEN coalesce(u.ver, -9223372036854775808)
                            > coalesce(s.ver, -9223372036854775808) THEN 'r'
                       WHEN coalesce(u.ver, -9223372036854775808)
                            < coalesce(s.ver, -9223372036854775808) THEN 's'
                       WHEN s.dig IS NULL OR s.dig = u.dig THEN 'd'
                       ELSE 'c' END::"char" ORDER BY u.i)
            INTO kinds
            FROM unnest(p_wids, p_versions, p_digests) WITH ORDINALITY AS u(wid, ver, dig, i)
            LEFT JOIN unnest(s_wids, s_versions, s_digests, s_tokens, s_revised)
                 AS s(wid, ver, dig, tok, rev) ON s.wid = u.wid COLLATE "C";

            -- What the revised versions added, to take it away (the rows are locked).
            SELECT array_agg(u.i), array_agg(array_to_string(w.signatures, ' ')),
                   array_agg(coalesce(w.tokens, 0)), array_agg(coalesce(w.cost, 0)),
                   array_agg(coalesce(w.dur_ms, 0)), array_agg(coalesce(w.err, false)),
                   array_agg(coalesce(w.retry, 0)), array_agg(w.start_us)
            INTO o_i, o_sigs, o_tokens, o_costs, o_durs, o_errs, o_retries, o_starts
            FROM unnest(p_wids) WITH ORDINALITY AS u(wid, i)
            JOIN workflows w ON w.tenant_id = p_tenant AND w.workflow_id = u.wid COLLATE "C"
            WHERE kinds[u.i::int] = 'r' AND w.counted;
        END IF;

        -- 3. The new workflows, then the revised ones, in the ledger.  A
        --    workflow another transaction recorded since step 1 fails the insert
        --    (unique violation): the caller runs the batch again, and then finds
        --    it.  (The RETURNING makes Citus insert row by row: its COPY would
        --    meet row-level security, which refuses COPY FROM.)
        IF 'n' = ANY (kinds) THEN
            WITH ins AS (
                INSERT INTO workflows (tenant_id, workflow_id, batch_token, version, digest, counted,
                                       revised, signatures, characteristics, tokens, cost, dur_ms,
                                       err, retry, start_us)
                SELECT p_tenant, u.wid, p_token, u.ver, u.dig, u.cnt, false,
                       string_to_array(u.sig, ' '), u.chr, u.tok, u.cost, u.dur, u.err, u.rty, u.st
                FROM unnest(p_wids, p_versions, p_digests, p_counted, p_sigs, p_chars, p_tokens,
                            p_costs, p_durs, p_errs, p_retries, p_starts)
                     WITH ORDINALITY AS u(wid, ver, dig, cnt, sig, chr, tok, cost, dur, err, rty, st, i)
                WHERE kinds[u.i::int] = 'n'
                RETURNING 1)
            SELECT count(*) INTO n_rows FROM ins;
        END IF;
        IF 'r' = ANY (kinds) THEN
            UPDATE workflows w
            SET batch_token = p_token, version = u.ver, digest = u.dig, counted = u.cnt,
                revised = true, signatures = string_to_array(u.sig, ' '), characteristics = u.chr,
                tokens = u.tok, cost = u.cost, dur_ms = u.dur, err = u.err, retry = u.rty,
                start_us = u.st
            FROM unnest(p_wids, p_versions, p_digests, p_counted, p_sigs, p_chars, p_tokens, p_costs,
                        p_durs, p_errs, p_retries, p_starts)
                 WITH ORDINALITY AS u(wid, ver, dig, cnt, sig, chr, tok, cost, dur, err, rty, st, i)
            WHERE kinds[u.i::int] = 'r' AND w.tenant_id = p_tenant AND w.workflow_id = u.wid COLLATE "C";
        END IF;

    END IF;

    -- 4. Each signature's net change: the occurrences that new and revised
    --    versions add (when final), less those of the versions revisions
    --    replaced (when they counted), added to the running sums in
    --    signature order.  A pattern is created by its first occurrence; its
    --    typical input is the characteristics of the first workflow of the
    --    batch that adds it.  When every workflow of the batch is new, the
    --    caller has summed the changes already (g_*, one element per
    --    signature, in signature order; NULL when it could not sum a cost
    --    exactly): the server then neither unnests the records again nor
    --    aggregates them.
    IF 'n' = ANY (kinds) OR 'r' = ANY (kinds) THEN
        summed := s_wids IS NULL AND g_sigs IS NOT NULL;
        WITH delta AS (
            SELECT g.sig, 1 AS sgn, u.tok, u.cost, u.dur, u.err, u.rty, u.st, u.i
            FROM unnest(p_sigs, p_counted, p_tokens, p_costs, p_durs, p_errs, p_retries, p_starts)
                 WITH ORDINALITY AS u(sig, cnt, tok, cost, dur, err, rty, st, i)
            CROSS JOIN LATERAL unnest(string_to_array(u.sig, ' ')) AS g(sig)
            WHERE NOT summed AND kinds[u.i::int] IN ('n', 'r') AND u.cnt
            UNION ALL
            SELECT g.sig, -1, -o.tok, -o.cost, o.dur, o.err, -o.rty, NULL, NULL
            FROM unnest(o_sigs, o_tokens, o_costs, o_durs, o_errs, o_retries)
                 AS o(sig, tok, cost, dur, err, rty)
            CROSS JOIN LATERAL unnest(string_to_array(o.sig, ' ')) AS g(sig)
        ), changes AS (
            SELECT g.sig, g.n, g.st, g.sc, g.dn, g.sd, g.sdq, g.se, g.sr, g.s0, g.s1, g.typical
            FROM unnest(g_sigs, g_n, g_tokens, g_costs, g_dur_n, g_durs, g_dur_sqs, g_errs,
                        g_retries, g_firsts, g_lasts, g_typicals)
                 AS g(sig, n, st, sc, dn, sd, sdq, se, sr, s0, s1, typical)
            WHERE summed
            UNION ALL
            SELECT d.sig, sum(d.sgn), sum(d.tok), sum(d.cost),
                   coalesce(sum(d.sgn) FILTER (WHERE d.dur > 0), 0),
                   coalesce(sum(d.sgn * d.dur) FILTER (WHERE d.dur > 0), 0),
                   coalesce(sum(d.sgn * d.dur::numeric * d.dur) FILTER (WHERE d.dur > 0), 0),
                   coalesce(sum(d.sgn) FILTER (WHERE d.err), 0), sum(d.rty), min(d.st), max(d.st),
                   p_chars[min(d.i)]
            FROM delta d
            GROUP BY d.sig
        )
        INSERT INTO operation_patterns AS p (tenant_id, pattern_signature, pattern_type,
            occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms,
            sum_duration_ms_sq, error_n, sum_retry, first_event_at, last_event_at,
            typical_input_pattern, created_batch)
        SELECT p_tenant, c.sig, split_part(c.sig, ':', 1), c.n, c.st, c.sc, c.dn, c.sd, c.sdq,
               c.se, c.sr, 'epoch'::timestamptz + c.s0 * interval '1 microsecond',
               'epoch'::timestamptz + c.s1 * interval '1 microsecond',
               coalesce(c.typical, '{}')::jsonb, p_token
        FROM changes c
        ORDER BY c.sig COLLATE "C"
        ON CONFLICT (tenant_id, pattern_signature) DO UPDATE SET
            occurrence_count = p.occurrence_count + EXCLUDED.occurrence_count,
            sum_tokens = p.sum_tokens + EXCLUDED.sum_tokens,
            sum_cost = p.sum_cost + EXCLUDED.sum_cost,
            duration_n = p.duration_n + EXCLUDED.duration_n,
            sum_duration_ms = p.sum_duration_ms + EXCLUDED.sum_duration_ms,
            sum_duration_ms_sq = p.sum_duration_ms_sq + EXCLUDED.sum_duration_ms_sq,
            error_n = p.error_n + EXCLUDED.error_n,
            sum_retry = p.sum_retry + EXCLUDED.sum_retry,
            first_event_at = least(p.first_event_at, EXCLUDED.first_event_at),
            last_event_at = greatest(p.last_event_at, EXCLUDED.last_event_at),
            last_seen = EXCLUDED.last_seen;
    END IF;

    -- 5. The event-time span where a revision took away an occurrence at
    --    its edge: looked up again among the pattern's counted occurrences
    --    (the one step that may cost more than the batch's own rows).
    IF o_i IS NOT NULL THEN
        -- The edges computed first, then set: Citus refuses an UPDATE that
        -- calls a STABLE function (timestamptz arithmetic) on a column.
        SELECT array_agg(l.sig), array_agg(l.lo), array_agg(l.hi), array_agg(e.first_at),
               array_agg(e.last_at)
        INTO e_sigs, e_lo, e_hi, e_first, e_last
        FROM (SELECT g.sig,
                     'epoch'::timestamptz + min(o.st) * interval '1 microsecond' AS lo,
                     'epoch'::timestamptz + max(o.st) * interval '1 microsecond' AS hi
              FROM unnest(o_sigs, o_starts) AS o(sig, st)
              CROSS JOIN LATERAL unnest(string_to_array(o.sig, ' ')) AS g(sig)
              GROUP BY g.sig) l
        CROSS JOIN LATERAL (
            SELECT 'epoch'::timestamptz + min(w.start_us) * interval '1 microsecond' AS first_at,
                   'epoch'::timestamptz + max(w.start_us) * interval '1 microsecond' AS last_at
            FROM workflows w
            WHERE w.tenant_id = p_tenant AND w.counted AND w.signatures @> ARRAY[l.sig]
        ) e;
        UPDATE operation_patterns p
        SET first_event_at = e.first_at, last_event_at = e.last_at
        FROM unnest(e_sigs, e_lo, e_hi, e_first, e_last) AS e(sig, lo, hi, first_at, last_at)
        WHERE p.tenant_id = p_tenant AND p.pattern_signature = e.sig
          AND (p.occurrence_count = 0 OR e.lo <= p.first_event_at OR e.hi >= p.last_event_at);
    END IF;

    outcomes := array_to_string(kinds, '');
    SELECT count(*) INTO new_patterns
    FROM operation_patterns WHERE tenant_id = p_tenant AND created_batch = p_token;
END
$fn$;
