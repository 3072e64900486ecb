"""The SQL text of the PostgreSQL delivery queue, and the planner settings every pooled connection runs with."""

from __future__ import annotations

from hookline.store.queue import NOTIFY_CHANNEL

# The planner profile of every pooled connection: an OLTP one. Each query here reaches its rows through an
# index (a due batch in due order, a delivery or subscription by primary key), and the plans the planner
# prefers instead go wrong on a queue, whose statistics lag behind its bursts: believing few rows are due,
# it fetches and sorts ALL due rows for a claim (a bitmap scan); believing a table small, it hashes all of
# deliveries to match a batch of 500 results. So: no bitmap scans, no hash or merge joins (ingestion turns
# hash joins back on for its own transaction, where two in-memory row sets meet), and no JIT, which costs
# tens of milliseconds and pays off only on long analytic queries.
SESSION_SETTINGS_SQL = (
    "SET jit = off; SET enable_bitmapscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off"
)
HASH_JOINS_FOR_THIS_TRANSACTION_SQL = "SELECT set_config('enable_hashjoin', 'on', true)"
NO_HASH_JOINS_FOR_THIS_TRANSACTION_SQL = "SELECT set_config('enable_hashjoin', 'off', true)"

# The database's clock, fixed for one statement.
NOW = "extract(epoch from statement_timestamp())::float8"


CLOCK_SQL = "SELECT extract(epoch from clock_timestamp())::float8"

CLAIM_SQL = f"""
WITH due AS (
    SELECT id, next_attempt_at FROM deliveries
    WHERE state = 'pending' AND next_attempt_at <= {NOW} AND subscription_id <> ALL(%(excluded)s::text[])
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
orphaned AS (
    UPDATE deliveries d
    SET state = 'cancelled', finished_at = {NOW}, next_attempt_at = NULL, lease_owner = NULL,
        last_error = 'subscription deleted'
    FROM due, subscriptions s
    WHERE d.id = due.id AND s.id = d.subscription_id AND s.deleted_at IS NOT NULL
),
claimed AS (
    UPDATE deliveries d
    SET lease_owner = %(owner)s, next_attempt_at = {NOW} + %(lease)s
    FROM due, events e, subscriptions s, deployments dep
    WHERE d.id = due.id AND e.id = d.event_row_id AND s.id = d.subscription_id AND s.deleted_at IS NULL
      AND dep.id = d.deployment_id
    RETURNING due.next_attempt_at AS due_at, d.id, d.subscription_id, d.deployment_id, d.attempts,
        e.event_id, e.object_id, e.resource_url, s.trigger_url, s.content_type, s.secret,
        dep.standard_webhooks, e.created_at, d.retries_allowed
)
SELECT id, subscription_id, deployment_id, attempts, event_id, object_id, resource_url, trigger_url,
    content_type, secret, standard_webhooks, created_at, retries_allowed
FROM claimed ORDER BY due_at, id
"""

# Record, step 1: lock the batch's subscriptions in id order (the lock order), and read their counters.
LOCK_SUBSCRIPTIONS_SQL = f"""
SELECT id, consecutive_failures, failing_since, deleted_at IS NOT NULL, {NOW}
FROM subscriptions WHERE id = ANY(%s::text[]) ORDER BY id FOR NO KEY UPDATE
"""

# Record, step 2: move each delivery on, fenced on its lease; only the rows returned count.
# A retry of a delivery that allows none (synchronous dispatch) fails it for good.
# The fence compares state with a per-row 'pending' (r.fence_state) rather than a literal on purpose: a
# literal would let the planner scan the partial due index (believed tiny while statistics lag behind a
# burst) for every result, where a primary-key lookup per result is always right.
RETRYING = "(r.state = 'pending' AND d.retries_allowed)"
FINISH_DELIVERIES_SQL = f"""
UPDATE deliveries d
SET state = CASE WHEN r.state = 'pending' AND NOT d.retries_allowed THEN 'failed' ELSE r.state END,
    attempts = d.attempts + 1, lease_owner = NULL,
    next_attempt_at = CASE WHEN {RETRYING} THEN {NOW} + r.retry_in ELSE NULL END,
    finished_at = CASE WHEN {RETRYING} THEN NULL ELSE {NOW} END,
    last_status_code = r.status_code, last_error = r.error
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::int[], %s::text[], %s::text[])
    AS r(id, owner, state, retry_in, status_code, error, fence_state)
WHERE d.id = r.id AND d.lease_owner = r.owner AND d.state = r.fence_state
RETURNING d.id
"""

# Record, step 3: log the attempts and write the subscriptions' new counters (computed in Python).
LOG_ATTEMPTS_AND_COUNTERS_SQL = f"""
WITH logged AS (
    INSERT INTO attempts (delivery_id, subscription_id, attempt_number, started_at, duration_ms, status_code,
        response_excerpt, error, error_class, outcome)
    SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::float8[], %s::float8[], %s::int[],
        %s::text[], %s::text[], %s::text[], %s::text[])
)
UPDATE subscriptions s
SET consecutive_failures = u.consecutive_failures, failing_since = u.failing_since,
    last_attempt_at = u.last_attempt_at, last_status_code = u.last_status_code, last_error = u.last_error,
    deleted_at = CASE WHEN u.deleted_reason IS NULL THEN s.deleted_at ELSE {NOW} END,
    deleted_reason = COALESCE(u.deleted_reason, s.deleted_reason)
FROM unnest(%s::text[], %s::int[], %s::float8[], %s::float8[], %s::int[], %s::text[], %s::text[])
    AS u(id, consecutive_failures, failing_since, last_attempt_at, last_status_code, last_error, deleted_reason)
WHERE s.id = u.id
"""

CANCEL_PENDING_OF_SUBSCRIPTIONS_SQL = f"""
UPDATE deliveries SET state = 'cancelled', finished_at = {NOW}, next_attempt_at = NULL, lease_owner = NULL,
    last_error = 'subscription deleted'
WHERE subscription_id = ANY(%s::text[]) AND state = 'pending'
"""

LOCK_ONE_SUBSCRIPTION_SQL = "SELECT 1 FROM subscriptions WHERE id = %s FOR NO KEY UPDATE"

# Ingest: an expired idempotency key is set NULL, so the unique constraint admits the new event.
RELEASE_EXPIRED_KEYS_SQL = f"""
UPDATE events e SET idempotency_key = NULL
FROM unnest(%s::int[], %s::text[]) AS k(deployment_id, idempotency_key)
WHERE e.deployment_id = k.deployment_id AND e.idempotency_key = k.idempotency_key
  AND e.created_at < {NOW} - %s
"""

# Ingest: store the events (ids drawn up front, so each input row knows its own) and fan them out.
# A key that conflicts (a live duplicate, here or in a concurrent transaction) inserts nothing.
INGEST_SQL = f"""
WITH input AS (
    SELECT nextval('events_id_seq') AS id, i.*
    FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
        WITH ORDINALITY AS i(deployment_id, event_id, object_id, resource_url, user_ids, user_filter,
            idempotency_key, only_subscription_id, ord)
),
inserted AS (
    INSERT INTO events (id, deployment_id, event_id, object_id, resource_url, user_ids, idempotency_key, created_at)
    SELECT id, deployment_id, event_id, object_id, resource_url, user_ids, idempotency_key, {NOW}
    FROM input ORDER BY ord
    ON CONFLICT (deployment_id, idempotency_key) DO NOTHING
    RETURNING id, created_at
),
fanned AS (
    INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,
        next_attempt_at, created_at)
    SELECT inserted.id, s.id, s.deployment_id, 'pending', 0, true, inserted.created_at, inserted.created_at
    FROM inserted
    JOIN input ON input.id = inserted.id
    JOIN subscriptions s ON s.deployment_id = input.deployment_id AND s.event_id = input.event_id
        AND s.deleted_at IS NULL
        AND (input.user_filter IS NULL OR s.user_id = ANY(input.user_filter::int[]))
        AND (input.only_subscription_id IS NULL OR s.id = input.only_subscription_id)
    ORDER BY input.ord, s.id
    RETURNING event_row_id
),
fan_counts AS (SELECT event_row_id, count(*) AS deliveries FROM fanned GROUP BY event_row_id)
SELECT input.ord, inserted.id, inserted.created_at, COALESCE(fan_counts.deliveries, 0)
FROM input
LEFT JOIN inserted ON inserted.id = input.id
LEFT JOIN fan_counts ON fan_counts.event_row_id = inserted.id
ORDER BY input.ord
"""

ORIGINALS_SQL = """
SELECT e.deployment_id, e.idempotency_key, e.id, e.event_id, e.object_id, e.resource_url, e.created_at,
    (SELECT count(*) FROM deliveries d WHERE d.event_row_id = e.id)
FROM events e JOIN unnest(%s::int[], %s::text[]) AS k(deployment_id, idempotency_key)
    ON e.deployment_id = k.deployment_id AND e.idempotency_key = k.idempotency_key
"""

NOTIFY_SQL = f"NOTIFY {NOTIFY_CHANNEL}"
LISTEN_SQL = f"LISTEN {NOTIFY_CHANNEL}"

ENQUEUE_LEASED_SQL = f"""
WITH target AS (
    SELECT s.id, s.deployment_id, s.trigger_url, s.content_type, s.secret, dep.standard_webhooks
    FROM subscriptions s JOIN deployments dep ON dep.id = s.deployment_id
    WHERE s.id = %(subscription_id)s AND s.deployment_id = %(deployment_id)s AND s.deleted_at IS NULL
),
event AS (
    INSERT INTO events (deployment_id, event_id, object_id, resource_url, user_ids, created_at)
    SELECT deployment_id, %(event_id)s, %(object_id)s, %(resource_url)s, %(user_ids)s, {NOW} FROM target
    RETURNING id, created_at
),
delivery AS (
    INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,
        next_attempt_at, lease_owner, created_at)
    SELECT event.id, target.id, target.deployment_id, 'pending', 0, false, {NOW} + %(lease)s, %(owner)s,
        event.created_at
    FROM event, target
    RETURNING id, created_at
)
SELECT delivery.id, target.id, target.deployment_id, 0, %(event_id)s, %(object_id)s, %(resource_url)s,
    target.trigger_url, target.content_type, target.secret, target.standard_webhooks, event.created_at, false
FROM delivery, event, target
"""

RELEASE_SQL = f"""
UPDATE deliveries SET lease_owner = NULL, next_attempt_at = {NOW}
WHERE lease_owner = %s AND state = 'pending'
"""

REDELIVER_SQL = f"""
INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,
    next_attempt_at, created_at, redelivery_of)
SELECT d.event_row_id, d.subscription_id, d.deployment_id, 'pending', 0, true, {NOW}, {NOW}, d.id
FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id AND s.deleted_at IS NULL
WHERE d.id = %s
RETURNING id
"""

NEXT_DUE_SQL = "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
SECONDS_UNTIL_DUE_SQL = f"SELECT min(next_attempt_at) - {NOW} FROM deliveries WHERE state = 'pending'"
PENDING_COUNT_SQL = "SELECT count(*) FROM deliveries WHERE state = 'pending'"

CANCEL_PENDING_SQL = f"""
UPDATE deliveries SET state = 'cancelled', finished_at = {NOW}, next_attempt_at = NULL, lease_owner = NULL,
    last_error = 'subscription deleted'
WHERE subscription_id = %s AND state = 'pending'
"""

# Prune: attempts, then the deliveries themselves (one statement: foreign keys are checked at its end).
PRUNE_DELIVERIES_SQL = """
WITH doomed AS (
    SELECT id FROM deliveries
    WHERE state <> 'pending' AND finished_at < %s
    ORDER BY finished_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
),
pruned_attempts AS (DELETE FROM attempts a USING doomed WHERE a.delivery_id = doomed.id)
DELETE FROM deliveries d USING doomed WHERE d.id = doomed.id
RETURNING d.event_row_id
"""

# Prune: the events whose deliveries were just pruned, once none is left.
PRUNE_EMPTIED_EVENTS_SQL = """
DELETE FROM events e
WHERE e.id = ANY(%s::bigint[]) AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_row_id = e.id)
"""

# Prune: old events that never had a delivery (they matched no subscription), a bounded batch of them.
PRUNE_UNMATCHED_EVENTS_SQL = """
DELETE FROM events e
WHERE e.id IN (
    SELECT candidate.id FROM events candidate
    WHERE candidate.created_at < %s
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_row_id = candidate.id)
    ORDER BY candidate.created_at
    LIMIT %s
)
"""
