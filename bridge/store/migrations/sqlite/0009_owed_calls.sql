-- Calls the bridge owes a system (bridge.owed): one durable queue for every owed write,
-- beside the deliveries. A call is unique by (system, operation_id): owing it again is the
-- same call. Statuses: pending -> in_flight (leased) -> done | pending (retry) | dead.
CREATE TABLE owed_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL,
    operation TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    arguments TEXT NOT NULL,
    subject TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT,
    owner TEXT,
    lease_until REAL,
    note TEXT,
    UNIQUE (system, operation_id)
);

CREATE INDEX owed_calls_due ON owed_calls (status, due_at);

CREATE INDEX owed_calls_subject ON owed_calls (subject);

-- The master calls reservations owed until now (reservations.pending*) become owed calls,
-- due when they were due, with the same operation ids the master has seen; nothing is lost.
INSERT INTO owed_calls (system, operation, operation_id, arguments, subject, status,
                        attempts, due_at, created_at, updated_at)
SELECT master,
       'reservation.' || pending,
       CASE pending
           WHEN 'reverse' THEN id || ':reverse:'
               || printf('%.2f', coalesce(CAST(returned AS REAL), 0)
                                 + CAST(pending_amount AS REAL))
           ELSE id || ':' || pending
       END,
       json_object('amount', pending_amount, 'then', pending_then),
       id, 'pending', pending_attempts, coalesce(pending_due_at, updated_at),
       updated_at, updated_at
  FROM reservations
 WHERE pending IS NOT NULL;

-- The reservation keeps what is owed (pending, pending_amount) as its own state; when and
-- how often it is tried is the owed call's.
UPDATE reservations
   SET pending_due_at = NULL, pending_attempts = 0
 WHERE pending IS NOT NULL;
