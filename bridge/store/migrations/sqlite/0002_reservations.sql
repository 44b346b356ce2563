-- SMS-confirmed reservations (PRODUCT 3.2). Amounts are decimal strings; times UNIX seconds.

CREATE TABLE reservations (
    id               TEXT PRIMARY KEY,        -- rsv_<random>; also the master's operation id
    status           TEXT NOT NULL,
    master           TEXT NOT NULL,
    customer_id      TEXT NOT NULL,           -- the master's id
    phone            TEXT,                    -- the phone the master has on file (E.164)
    amount           TEXT NOT NULL,           -- held
    committed        TEXT,                    -- written off
    order_system     TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    order_total      TEXT,
    master_order_id  TEXT NOT NULL,           -- the order as the master knows it
    master_ref       TEXT,                    -- the master's reservation id
    channel          TEXT,
    client           TEXT NOT NULL,           -- the API client that made it
    idempotency_key  TEXT,
    request_hash     TEXT,
    sender           TEXT NOT NULL,           -- bridge | master
    code_hash        TEXT,                    -- HMAC of the code; NULL once used
    code_expires_at  REAL,
    verification_id  TEXT,                    -- the master's SMS check (sender: master)
    attempts         INTEGER NOT NULL DEFAULT 0,
    sends            INTEGER NOT NULL DEFAULT 0,
    last_sent_at     REAL,
    pending          TEXT,                    -- commit | release: a master call still owed
    pending_amount   TEXT,
    pending_then     TEXT,                    -- the status once the pending call is done
    pending_attempts INTEGER NOT NULL DEFAULT 0,
    pending_due_at   REAL,
    error_code       TEXT,
    error_detail     TEXT,
    expires_at       REAL NOT NULL,           -- the hold is released at the master after this
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    version          INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX reservations_idempotency ON reservations (client, idempotency_key);
CREATE INDEX reservations_status ON reservations (status, expires_at);
CREATE INDEX reservations_pending ON reservations (pending_due_at);
CREATE INDEX reservations_created ON reservations (created_at);

-- Append-only: every transition and master call of a reservation.
CREATE TABLE reservation_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reservation_id TEXT NOT NULL,
    at             REAL NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    detail         TEXT,
    actor          TEXT
);
CREATE INDEX reservation_history_rsv ON reservation_history (reservation_id);
CREATE TRIGGER reservation_history_no_update BEFORE UPDATE ON reservation_history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER reservation_history_no_delete BEFORE DELETE ON reservation_history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;

-- Codes sent per phone (keyed by an HMAC of the phone), for the per-phone cap.
CREATE TABLE sms_sends (
    phone_key      TEXT NOT NULL,
    at             REAL NOT NULL,
    reservation_id TEXT NOT NULL
);
CREATE INDEX sms_sends_phone ON sms_sends (phone_key, at);

-- What the sandbox SMS gateway "sent" (sandbox only; holds codes in clear by design).
CREATE TABLE sandbox_messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    phone     TEXT NOT NULL,
    text      TEXT NOT NULL,
    reference TEXT
);

-- Process-independent secrets the store keeps (the key codes are hashed with).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
