"""SQL of the PostgreSQL store, one statement per transition, each with its reason.

The transitions are SQLite's (``bridge.store.sqlite.sql``); what differs is how several
instances are kept apart:

- Intake takes a transaction-level advisory lock per (target, entity) before it touches
  that entity's deliveries (:data:`LOCK_ENTITIES`, in key order so two batches never wait
  on each other in a circle). So an entity's deliveries are numbered in the order their
  transactions commit, and "no older delivery of the entity still waits" means the same
  on every instance.
- Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED``: a row another instance
  is claiming (or an intake is joining a change to) is skipped, never waited for, and a
  younger delivery of the same entity stays blocked behind it, since the older one still
  reads as waiting in the claim's snapshot.
- An event's derived status is refreshed after its rows are locked, in id order, by a
  statement of its own (:data:`LOCK_EVENTS`), so the refresh reads the deliveries as
  committed by whoever held the lock before (READ COMMITTED takes a new snapshot per
  statement).
"""

# The entity locks of one intake transaction, taken in key order; released at commit.
LOCK_ENTITIES = """
SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) AS keys
"""

# A waiting delivery is due when its time has come and no older delivery of the same
# entity to the same target is still waiting or in flight: that keeps per-entity order.
# Live changes go before backfilled ones (priority 0 before 1). A row another instance is
# claiming is skipped; its entity's younger deliveries see it as waiting and stay back.
CLAIM_DUE = """
SELECT d.id FROM deliveries d
WHERE d.status IN ('pending', 'retry') AND d.target = %s AND d.due_at <= %s
  AND NOT EXISTS (
    SELECT 1 FROM deliveries o
    WHERE o.target = d.target AND o.entity_key = d.entity_key AND o.id < d.id
      AND o.status IN ('pending', 'retry', 'in_flight'))
ORDER BY d.priority, d.due_at, d.id
LIMIT %s
FOR UPDATE OF d SKIP LOCKED
"""

# pending|retry -> in_flight: the lease says who holds it and until when.
MARK_IN_FLIGHT = """
UPDATE deliveries
SET status = 'in_flight', lease_owner = %s, lease_until = %s, attempts = attempts + 1,
    updated_at = %s
WHERE id = ANY(%s)
"""

# in_flight -> done | retry | dead, only while we still hold the lease for this very
# attempt (the attempt number tells our claim from a later one by the same process).
FINISH = """
UPDATE deliveries
SET status = %s, due_at = COALESCE(%s::double precision, due_at), lease_owner = NULL,
    lease_until = NULL, last_error_class = %s, last_error = %s, updated_at = %s
WHERE id = %s AND status = 'in_flight' AND lease_owner = %s AND attempts = %s
"""

# in_flight -> pending when the holder died: its lease ran out (several instances share
# the database, so nothing short of the lease's end tells that a holder is gone).
EXPIRED_LEASES = """
SELECT id, attempts, lease_owner FROM deliveries
WHERE status = 'in_flight' AND lease_until < %s
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
# A worker still on it (several deliveries of one slot, one after another) keeps its lease.
EXTEND_LEASE = """
UPDATE deliveries SET lease_until = %s
WHERE id = ANY(%s) AND status = 'in_flight' AND lease_owner = %s
"""
# in_flight -> pending: the released delivery is due at once, its attempt counted.
RELEASE_LEASE = """
UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,
    due_at = %s, updated_at = %s
WHERE id = ANY(%s)
"""

# dead|done -> pending by a replay; the attempt counter restarts, history keeps the past,
# and a new generation gives the replay its own operation key.
REQUEUE = """
UPDATE deliveries SET status = 'pending', due_at = %s, attempts = 0, generation = generation + 1,
    last_error_class = NULL, last_error = NULL, updated_at = %s
WHERE id = ANY(%s)
"""

# The events the changed deliveries carry, locked in id order before their refresh.
LOCK_EVENTS = """
SELECT e.id FROM events e
WHERE e.id IN (SELECT event_id FROM delivery_events WHERE delivery_id = ANY(%s))
  AND e.status != 'rejected'
ORDER BY e.id
FOR UPDATE OF e
"""

# An event's status is the worst of its deliveries' (dead > in_flight > retry > pending).
REFRESH_EVENTS = """
UPDATE events SET updated_at = %s, status = COALESCE((
    SELECT d.status FROM delivery_events de JOIN deliveries d ON d.id = de.delivery_id
    WHERE de.event_id = events.id
    ORDER BY CASE d.status WHEN 'dead' THEN 0 WHEN 'in_flight' THEN 1 WHEN 'retry' THEN 2
                           WHEN 'pending' THEN 3 ELSE 4 END
    LIMIT 1), 'done')
WHERE id = ANY(%s)
"""

INSERT_EVENT = """
INSERT INTO events (source, source_key, entity, entity_id, action, payload, status, reason,
                    received_at, updated_at, backfill)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, source_key) DO NOTHING
RETURNING id
"""

# Intake's own statements (lift, find the waiting delivery, insert one, link) are one call
# of append_event(), defined in migrations/postgres/0005_append_event.sql.

INSERT_HISTORY = """
INSERT INTO history (at, kind, delivery_id, event_id, attempt, outcome, error_class, message,
                     duration_ms, actor)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

EVENT_COLUMNS = (
    "e.id, e.source, e.source_key, e.entity, e.entity_id, e.action, e.status, e.reason,"
    " e.received_at, e.updated_at"
)

DELIVERY_COLUMNS = (
    "d.id, d.target, d.source, d.entity, d.entity_id, d.status, d.attempts, d.due_at,"
    " d.last_error_class, d.last_error, d.created_at, d.updated_at, d.generation"
)
