-- The event log. Times are UNIX seconds (REAL). Public ids are evt_<id> and dlv_<id>.

-- Inbound events. (source, source_key) is the de-duplication key: a second webhook or poll
-- carrying the same change finds the first row and is answered "duplicate".
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    source_key  TEXT NOT NULL,
    entity      TEXT,
    entity_id   TEXT,
    action      TEXT,
    payload     TEXT NOT NULL,   -- JSON of the parsed change, or the raw body when rejected
    status      TEXT NOT NULL,   -- derived from the deliveries; 'rejected' when unparsable
    reason      TEXT,            -- why rejected, or 'no route'
    received_at REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (source, source_key)
);
CREATE INDEX events_status_received ON events (status, received_at);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_source_received ON events (source, received_at);

-- One delivery per (target, entity) while it waits: new events for the same entity join
-- the waiting delivery (coalescing) instead of adding a write. entity_key orders them.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    target           TEXT NOT NULL,
    source           TEXT NOT NULL,
    entity           TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    entity_key       TEXT NOT NULL,  -- source/entity/entity_id
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,  -- attempts since creation or last replay
    generation       INTEGER NOT NULL DEFAULT 0,  -- replays so far; part of the operation key
    due_at           REAL NOT NULL,
    lease_owner      TEXT,
    lease_until      REAL,
    last_error_class TEXT,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, target, due_at);
CREATE INDEX deliveries_entity ON deliveries (target, entity_key, id);

CREATE TABLE delivery_events (
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    event_id    INTEGER NOT NULL REFERENCES events (id),
    PRIMARY KEY (delivery_id, event_id)
);
CREATE INDEX delivery_events_event ON delivery_events (event_id);

-- Append-only history: every attempt, every replay, every lease that expired.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    kind        TEXT NOT NULL,
    delivery_id INTEGER,
    event_id    INTEGER,
    attempt     INTEGER,
    outcome     TEXT,
    error_class TEXT,
    message     TEXT,
    duration_ms REAL,
    actor       TEXT
);
CREATE INDEX history_delivery ON history (delivery_id);
CREATE INDEX history_event ON history (event_id);
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;

-- Poll positions; advanced in the same transaction that stores the events read with them.
CREATE TABLE cursors (
    source     TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (source, name)
);

-- Which id an entity has in each system (order 17 in 1C is order A-17 in RetailCRM).
CREATE TABLE id_map (
    entity      TEXT NOT NULL,
    system      TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    peer_system TEXT NOT NULL,
    peer_id     TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (entity, system, local_id, peer_system)
);
CREATE UNIQUE INDEX id_map_peer ON id_map (entity, peer_system, peer_id, system);

-- Idempotency-Key records: the first answer to a key is replayed for its repeats.
CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
