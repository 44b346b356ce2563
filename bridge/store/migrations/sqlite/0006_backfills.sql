-- Backfills (`bridge backfill`): the history of one source's entities listed page by page
-- into the event log, resumable from `cursor`, delivered after live traffic.

-- 0 for live changes, 1 for backfilled ones; a claim takes the lower first.
ALTER TABLE deliveries ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_due_priority ON deliveries (status, target, priority, due_at);

-- The backfill that listed an event; NULL for a live change.
ALTER TABLE events ADD COLUMN backfill INTEGER;
CREATE INDEX events_backfill ON events (backfill, status) WHERE backfill IS NOT NULL;

CREATE TABLE backfills (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    targets     TEXT NOT NULL,   -- comma-separated, sorted
    since       TEXT,            -- ISO date, or NULL for everything
    status      TEXT NOT NULL,   -- listing | delivering | done | cancelled | failed
    cursor      TEXT,            -- where the next page starts; NULL before the first
    listed      INTEGER NOT NULL DEFAULT 0,
    total       INTEGER,         -- as the source last said, if it says
    error       TEXT,            -- the last listing error (cleared by a good page)
    actor       TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    finished_at REAL
);
-- One open backfill per (source, entity, targets, since): running the command again resumes it.
CREATE UNIQUE INDEX backfills_open ON backfills (source, entity, targets, ifnull(since, ''))
    WHERE status IN ('listing', 'delivering');
