"""SQL of the SQLite store, one statement per transition, each with its reason."""

# A waiting delivery is due when its time has come and no older delivery of the same
# entity to the same target is still waiting or in flight: that keeps per-entity order.
# Live changes go before backfilled ones (priority 0 before 1).
CLAIM_DUE = """
SELECT d.id FROM deliveries d
WHERE d.status IN ('pending', 'retry') AND d.target = ? AND d.due_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM deliveries o
    WHERE o.target = d.target AND o.entity_key = d.entity_key AND o.id < d.id
      AND o.status IN ('pending', 'retry', 'in_flight'))
ORDER BY d.priority, d.due_at, d.id
LIMIT ?
"""

# pending|retry -> in_flight: the lease says who holds it and until when.
MARK_IN_FLIGHT = """
UPDATE deliveries
SET status = 'in_flight', lease_owner = ?, lease_until = ?, attempts = attempts + 1,
    updated_at = ?
WHERE id = ?
"""

# in_flight -> done | retry | dead, only while we still hold the lease for this very
# attempt (the attempt number tells our claim from a later one by the same process).
FINISH = """
UPDATE deliveries
SET status = ?, due_at = COALESCE(?, due_at), lease_owner = NULL, lease_until = NULL,
    last_error_class = ?, last_error = ?, updated_at = ?
WHERE id = ? AND status = 'in_flight' AND lease_owner = ? AND attempts = ?
"""

# in_flight -> pending when the holder died: its lease ran out (or, under the SQLite
# single-instance lock, the previous process is known to be gone).
EXPIRED_LEASES = """
SELECT id, attempts, lease_owner FROM deliveries
WHERE status = 'in_flight' AND (lease_until < ? OR (? IS NOT NULL AND lease_owner != ?))
"""
# A worker still on it (several deliveries of one slot, one after another) keeps its lease.
EXTEND_LEASE = """
UPDATE deliveries SET lease_until = ?
WHERE id = ? AND status = 'in_flight' AND lease_owner = ?
"""
# in_flight -> pending: the released delivery is due at once, its attempt counted.
RELEASE_LEASE = """
UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,
    due_at = ?, updated_at = ?
WHERE id = ?
"""

# dead|done -> pending by a replay; the attempt counter restarts, history keeps the past,
# and a new generation gives the replay its own operation key (an idempotent target would
# otherwise answer a replayed write as a repeat and not apply it).
REQUEUE = """
UPDATE deliveries SET status = 'pending', due_at = ?, attempts = 0, generation = generation + 1,
    last_error_class = NULL, last_error = NULL, updated_at = ?
WHERE id = ?
"""

# An event's status is the worst of its deliveries' (dead > in_flight > retry > pending).
REFRESH_EVENTS = """
UPDATE events SET updated_at = ?, status = COALESCE((
    SELECT d.status FROM delivery_events de JOIN deliveries d ON d.id = de.delivery_id
    WHERE de.event_id = events.id
    ORDER BY CASE d.status WHEN 'dead' THEN 0 WHEN 'in_flight' THEN 1 WHEN 'retry' THEN 2
                           WHEN 'pending' THEN 3 ELSE 4 END
    LIMIT 1), 'done')
WHERE id IN (SELECT event_id FROM delivery_events WHERE delivery_id = ?)
  AND status != 'rejected'
"""

INSERT_EVENT = """
INSERT INTO events (source, source_key, entity, entity_id, action, payload, status, reason,
                    received_at, updated_at, backfill)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, source_key) DO NOTHING
RETURNING id
"""

# A new change of an entity joins the delivery that waits for it (coalescing) only if that
# delivery was never attempted: an attempt may have landed even when it failed (a timeout
# after the write), and the target would take the same operation key with newer state as
# a repeat. So a change arriving during a flight or a retry gets a delivery of its own,
# which runs after the earlier one.
FIND_WAITING = """
SELECT id FROM deliveries
WHERE target = ? AND entity_key = ? AND status = 'pending' AND attempts = 0
ORDER BY id DESC LIMIT 1
"""

# A live change of an entity: its backfilled deliveries that still wait go first too.
LIFT_WAITING = """
UPDATE deliveries SET priority = 0
WHERE target = ? AND entity_key = ? AND priority > 0 AND status IN ('pending', 'retry')
"""

# -> pending: a new delivery of an entity to a target, due at once (after older ones).
INSERT_DELIVERY = """
INSERT INTO deliveries (target, source, entity, entity_id, entity_key, status, due_at,
                        created_at, updated_at, priority)
VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
RETURNING id
"""

# An event joins a delivery: the link carries what `events list --target` reads (see the
# listing's migration). The delivery it joins or starts is always pending (FIND_WAITING).
INSERT_LINK = """
INSERT INTO delivery_events (delivery_id, event_id, target, status, received_at)
VALUES (?, ?, ?, 'pending', ?)
"""

INSERT_HISTORY = """
INSERT INTO history (at, kind, delivery_id, event_id, attempt, outcome, error_class, message,
                     duration_ms, actor)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

EVENT_COLUMNS = (
    "e.id, e.source, e.source_key, e.entity, e.entity_id, e.action, e.status, e.reason,"
    " e.received_at, e.updated_at"
)

DELIVERY_COLUMNS = (
    "d.id, d.target, d.source, d.entity, d.entity_id, d.status, d.attempts, d.due_at,"
    " d.last_error_class, d.last_error, d.created_at, d.updated_at, d.generation"
)
