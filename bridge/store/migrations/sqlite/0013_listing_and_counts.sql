-- Listing and counting that do not grow with the log (issue 16): a page of `bridge events
-- list` reads one index in the order it prints (newest received first, the event id
-- breaking ties), and `bridge status` reads counts kept as the log changes.

-- By target, the listing walks the links: each carries its delivery's target and status and
-- its event's reception, copied by the triggers below (the writers insert the link as
-- before), so `--target X [--status S]` is one index range read newest first.
ALTER TABLE delivery_events ADD COLUMN target TEXT;
ALTER TABLE delivery_events ADD COLUMN status TEXT;
ALTER TABLE delivery_events ADD COLUMN received_at REAL;
UPDATE delivery_events SET
    (target, status) = (SELECT d.target, d.status FROM deliveries d WHERE d.id = delivery_id),
    received_at = (SELECT e.received_at FROM events e WHERE e.id = event_id);
CREATE INDEX delivery_events_target ON delivery_events (target, received_at, event_id);
CREATE INDEX delivery_events_target_status
    ON delivery_events (target, status, received_at, event_id);

-- A new link copies what it lists by (a writer may also give them itself: bulk loads).
CREATE TRIGGER delivery_events_listed AFTER INSERT ON delivery_events
WHEN NEW.target IS NULL
BEGIN
    UPDATE delivery_events SET
        (target, status) = (SELECT target, status FROM deliveries WHERE id = NEW.delivery_id),
        received_at = (SELECT received_at FROM events WHERE id = NEW.event_id)
    WHERE rowid = NEW.rowid;
END;

-- Every status change of a delivery reaches its links (a delivery's target never changes).
CREATE TRIGGER deliveries_status_listed AFTER UPDATE OF status ON deliveries
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE delivery_events SET status = NEW.status WHERE delivery_id = NEW.id;
END;

-- `bridge status`: the oldest waiting delivery of a target, without reading done ones.
CREATE INDEX deliveries_waiting ON deliveries (target, status, created_at)
    WHERE status IN ('pending', 'retry');

-- Counts per status, kept by triggers in the transaction that changes a row: events per
-- status (target ''), deliveries per target and status. One writer, so one row per cell.
CREATE TABLE log_counts (
    tally  TEXT NOT NULL,   -- 'events' or 'deliveries'
    target TEXT NOT NULL,   -- a delivery's target; '' for events
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (tally, target, status)
) WITHOUT ROWID;
INSERT INTO log_counts SELECT 'events', '', status, count(*) FROM events GROUP BY status;
INSERT INTO log_counts
SELECT 'deliveries', target, status, count(*) FROM deliveries GROUP BY target, status;

CREATE TRIGGER events_counted_in AFTER INSERT ON events
BEGIN
    INSERT INTO log_counts VALUES ('events', '', NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER events_counted_out AFTER DELETE ON events
BEGIN
    UPDATE log_counts SET n = n - 1
    WHERE tally = 'events' AND target = '' AND status = OLD.status;
END;
CREATE TRIGGER events_counted_moved AFTER UPDATE OF status ON events
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE log_counts SET n = n - 1
    WHERE tally = 'events' AND target = '' AND status = OLD.status;
    INSERT INTO log_counts VALUES ('events', '', NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER deliveries_counted_in AFTER INSERT ON deliveries
BEGIN
    INSERT INTO log_counts VALUES ('deliveries', NEW.target, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_counted_out AFTER DELETE ON deliveries
BEGIN
    UPDATE log_counts SET n = n - 1
    WHERE tally = 'deliveries' AND target = OLD.target AND status = OLD.status;
END;
CREATE TRIGGER deliveries_counted_moved AFTER UPDATE OF status, target ON deliveries
WHEN NEW.status IS NOT OLD.status OR NEW.target IS NOT OLD.target
BEGIN
    UPDATE log_counts SET n = n - 1
    WHERE tally = 'deliveries' AND target = OLD.target AND status = OLD.status;
    INSERT INTO log_counts VALUES ('deliveries', NEW.target, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
