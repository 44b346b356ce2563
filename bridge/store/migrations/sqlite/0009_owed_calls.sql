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
