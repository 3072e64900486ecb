"""The SQL text of the SQLite delivery queue, and the row shapes its statements read and write."""

from __future__ import annotations

import operator

from hookline.store.schema import ERROR_CLASS_MAX_CHARS, ERROR_MAX_CHARS

# Terminal states clear the due time and the lease, so the partial due index only ever holds pending rows.

SELECT_EVENT_BY_KEY = (
    "SELECT id, event_id, object_id, resource_url, created_at FROM events"
    " WHERE deployment_id = ? AND idempotency_key = ?"
)
COUNT_FANOUT_DELIVERIES = "SELECT count(*) FROM deliveries WHERE event_row_id = ? AND redelivery_of IS NULL"
FORGET_IDEMPOTENCY_KEY = "UPDATE events SET idempotency_key = NULL WHERE id = ?"
INSERT_EVENT = (
    "INSERT INTO events (deployment_id, event_id, object_id, resource_url, user_ids, idempotency_key, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
FANOUT = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at)"
    " SELECT ?, id, deployment_id, 'pending', 0, 1, ?, ? FROM subscriptions"
    " WHERE deployment_id = ? AND event_id = ? AND deleted_at IS NULL"
)
FANOUT_USERS_FILTER = " AND user_id IN (SELECT value FROM json_each(?))"
FANOUT_ONLY_FILTER = " AND id = ?"

SELECT_LIVE_SUBSCRIPTION = (
    "SELECT s.deployment_id, s.trigger_url, s.content_type, s.secret, dep.standard_webhooks"
    " FROM subscriptions AS s JOIN deployments AS dep ON dep.id = s.deployment_id"
    " WHERE s.id = ? AND s.deleted_at IS NULL"
)
INSERT_LEASED_DELIVERY = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, lease_owner, created_at) VALUES (?, ?, ?, 'pending', 0, 0, ?, ?, ?)"
)

# A claim answers its rows as ONE JSON text (json_group_array): the sqlite3 module releases and retakes the GIL
# around every row it steps through, and on a busy process each retake waits for the event loop's thread, so
# fetching a batch row by row took milliseconds where one step and a json.loads take microseconds. (The
# aggregate's order is unspecified: rows carry their due time and are sorted in Python.)
CLAIM_SELECT = (
    # ClaimedDelivery's fields in its order, then the subscription's deleted_at and the due time.
    "SELECT json_group_array(json_array(d.id, d.subscription_id, d.deployment_id, d.attempts, e.event_id,"
    " e.object_id, e.resource_url, s.trigger_url, s.content_type, s.secret, dep.standard_webhooks, e.created_at,"
    " d.retries_allowed, s.deleted_at, d.next_attempt_at)) FROM (SELECT d.id, d.subscription_id,"
    " d.deployment_id, d.attempts, d.retries_allowed, d.next_attempt_at, d.event_row_id"
    " FROM deliveries AS d"
    " WHERE d.state = 'pending' AND d.next_attempt_at <= ?{exclusion}"
    " ORDER BY d.next_attempt_at, d.id LIMIT ?) AS d"
    " JOIN events AS e ON e.id = d.event_row_id"
    " JOIN subscriptions AS s ON s.id = d.subscription_id"
    " JOIN deployments AS dep ON dep.id = d.deployment_id"
)
CLAIMED_ORDER = operator.itemgetter(14, 0)  # due time, then id: oldest due first
CLAIM_SELECT_ALL = CLAIM_SELECT.format(exclusion="")
CLAIM_SELECT_EXCLUDING = CLAIM_SELECT.format(exclusion=" AND d.subscription_id NOT IN (SELECT value FROM json_each(?))")
LEASE = "UPDATE deliveries SET next_attempt_at = ?, lease_owner = ? WHERE id IN (SELECT value FROM json_each(?))"
CANCEL_DELIVERIES = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    " WHERE id IN (SELECT value FROM json_each(?))"
)

# Recording a batch of results: they are staged, in started_at order, into a temporary table that keeps only
# those still holding their lease, the first for each delivery (a UNIQUE delivery_id and INSERT OR IGNORE);
# every later statement is set-based over that table.
RESULT_FIELDS = operator.attrgetter(
    "delivery_id",
    "lease_owner",
    "attempt_number",
    "started_at",
    "duration_ms",
    "status_code",
    "response_excerpt",
    "error",
    "error_class",
    "outcome",
    "retry_in_seconds",
)
STARTED_AT = operator.attrgetter("started_at")
# `position` is the batch's started_at order; `outcome` is the effective one (a retry of a delivery without
# retries is a failure), `reported_outcome` the one the attempt row logs.
CREATE_RECORDED_RESULTS = (
    "CREATE TEMP TABLE IF NOT EXISTS recorded_results (position INTEGER PRIMARY KEY,"
    " delivery_id INTEGER NOT NULL UNIQUE, subscription_id TEXT NOT NULL, attempt_number INTEGER,"
    " started_at REAL NOT NULL, duration_ms REAL, status_code INTEGER, response_excerpt TEXT, error TEXT,"
    " error_class TEXT, reported_outcome TEXT NOT NULL, outcome TEXT NOT NULL, retry_in_seconds REAL)"
)
# The batch arrives as one JSON array of RESULT_FIELDS tuples: one statement steps once (see CLAIM_SELECT on
# why per-row steps cost so much on a busy process).
STAGE_RESULTS = (
    "INSERT OR IGNORE INTO temp.recorded_results (delivery_id, subscription_id, attempt_number, started_at,"
    " duration_ms, status_code, response_excerpt, error, error_class, reported_outcome, outcome, retry_in_seconds)"
    " SELECT r.value ->> 0, d.subscription_id, r.value ->> 2, r.value ->> 3, r.value ->> 4, r.value ->> 5,"
    f" r.value ->> 6, substr(r.value ->> 7, 1, {ERROR_MAX_CHARS}), substr(r.value ->> 8, 1, {ERROR_CLASS_MAX_CHARS}),"
    " r.value ->> 9, CASE WHEN r.value ->> 9 = 'retry' AND NOT d.retries_allowed THEN 'failed' ELSE r.value ->> 9 END,"
    " r.value ->> 10"
    " FROM json_each(?) AS r CROSS JOIN deliveries AS d"
    # The lease fence: a result counts only while its delivery is pending and leased to the result's owner.
    " WHERE d.id = r.value ->> 0 AND d.state = 'pending' AND d.lease_owner = r.value ->> 1"
    " ORDER BY r.key"
)
INSERT_ATTEMPTS = (
    "INSERT INTO attempts (delivery_id, subscription_id, attempt_number, started_at, duration_ms, status_code,"
    " response_excerpt, error, error_class, outcome)"
    " SELECT delivery_id, subscription_id, attempt_number, started_at, duration_ms, status_code, response_excerpt,"
    " error, error_class, reported_outcome FROM temp.recorded_results ORDER BY position"
)
MOVE_DELIVERIES_ON = (
    "UPDATE deliveries SET"
    " state = CASE r.outcome WHEN 'retry' THEN 'pending' WHEN 'success' THEN 'succeeded' ELSE 'failed' END,"
    " attempts = attempts + 1,"
    " next_attempt_at = CASE WHEN r.outcome = 'retry' THEN :now + coalesce(r.retry_in_seconds, 0.0) END,"
    " lease_owner = NULL, finished_at = CASE WHEN r.outcome = 'retry' THEN NULL ELSE :now END,"
    " last_status_code = r.status_code, last_error = r.error"
    # The unary + keeps the planner from scanning deliveries to probe recorded_results by delivery_id.
    " FROM temp.recorded_results AS r WHERE deliveries.id = +r.delivery_id"
)
# Per subscription: a success in the batch resets the counters to the failures after the last success;
# retry and failed count one failure each (gone counts none); the last_* fields come from the latest attempt.
TALLY_SUBSCRIPTIONS = (
    "WITH marks AS ("
    "  SELECT subscription_id, max(position) AS last_position,"
    "   max(CASE WHEN outcome = 'success' THEN position END) AS last_success_position"
    "  FROM temp.recorded_results GROUP BY subscription_id"
    " ), tallies AS ("
    "  SELECT m.subscription_id, m.last_success_position IS NOT NULL AS reset, count(f.position) AS failures,"
    "   min(f.started_at) AS first_failure_at, latest.started_at AS last_attempt_at,"
    "   latest.status_code AS last_status_code, latest.error AS last_error"
    "  FROM marks AS m JOIN temp.recorded_results AS latest ON latest.position = m.last_position"
    "  LEFT JOIN temp.recorded_results AS f ON f.subscription_id = m.subscription_id"
    "   AND f.outcome IN ('retry', 'failed') AND f.position > coalesce(m.last_success_position, 0)"
    "  GROUP BY m.subscription_id"
    " )"
    " UPDATE subscriptions SET"
    " consecutive_failures = CASE WHEN t.reset THEN t.failures ELSE consecutive_failures + t.failures END,"
    " failing_since = CASE WHEN t.reset THEN t.first_failure_at ELSE coalesce(failing_since, t.first_failure_at) END,"
    " last_attempt_at = t.last_attempt_at, last_status_code = t.last_status_code, last_error = t.last_error"
    " FROM tallies AS t WHERE subscriptions.id = t.subscription_id"
)
# Subscriptions that failed in this batch after their last success in it (if any).
FAILED_IN_BATCH = (
    "SELECT subscription_id FROM temp.recorded_results GROUP BY subscription_id"
    " HAVING max(CASE WHEN outcome IN ('retry', 'failed') THEN position END)"
    " > coalesce(max(CASE WHEN outcome = 'success' THEN position END), 0)"
)
DELETE_FAILING_SUBSCRIPTIONS = (
    "UPDATE subscriptions SET deleted_at = ?, deleted_reason = 'too_many_failures'"
    f" WHERE id IN ({FAILED_IN_BATCH}) AND deleted_at IS NULL"
    " AND consecutive_failures >= ? AND failing_since IS NOT NULL AND failing_since <= ?"
    " RETURNING id"
)
GONE_IN_BATCH = "SELECT subscription_id FROM temp.recorded_results WHERE outcome = 'gone'"
DELETE_GONE_SUBSCRIPTIONS = (
    "UPDATE subscriptions SET deleted_at = ?, deleted_reason = 'gone'"
    f" WHERE id IN ({GONE_IN_BATCH}) AND deleted_at IS NULL"
)
# Cancel the pending deliveries of the subscriptions gone in this batch and of those it deleted for failing.
CANCEL_PENDING_OF_REMOVED = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    f" WHERE state = 'pending' AND subscription_id IN ({GONE_IN_BATCH} UNION ALL SELECT value FROM json_each(?))"
)
CLEAR_RECORDED_RESULTS = "DELETE FROM temp.recorded_results"

RELEASE_OWNER = (
    "UPDATE deliveries SET next_attempt_at = ?, lease_owner = NULL WHERE state = 'pending' AND lease_owner = ?"
)
RELEASE_ALL = (
    "UPDATE deliveries SET next_attempt_at = ?, lease_owner = NULL WHERE state = 'pending' AND lease_owner IS NOT NULL"
)
REDELIVER = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at, redelivery_of)"
    " SELECT d.event_row_id, d.subscription_id, d.deployment_id, 'pending', 0, 1, ?, ?, d.id"
    " FROM deliveries AS d JOIN subscriptions AS s ON s.id = d.subscription_id"
    " WHERE d.id = ? AND s.deleted_at IS NULL"
)
NEXT_DUE_AT = "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
PENDING_COUNT = "SELECT count(*) FROM deliveries WHERE state = 'pending'"

SELECT_PRUNABLE = (
    "SELECT id, event_row_id FROM deliveries WHERE state <> 'pending' AND finished_at < ? ORDER BY finished_at LIMIT ?"
)
SELECT_OLD_EVENTS = "SELECT id FROM events WHERE created_at < ? ORDER BY created_at LIMIT ?"
DELETE_ATTEMPTS_OF = "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"
DELETE_DELIVERIES = "DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
# One pass over deliveries for the whole batch (an index on deliveries.event_row_id makes it a lookup).
EVENTS_STILL_DELIVERED = (
    "SELECT DISTINCT event_row_id FROM deliveries WHERE event_row_id IN (SELECT value FROM json_each(?))"
)
DELETE_EVENTS = "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))"

CANCEL_PENDING_OF_SUBSCRIPTION = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    " WHERE subscription_id = ? AND state = 'pending'"
)
