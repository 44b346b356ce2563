-- Listing and counting that do not grow with the log (issue 16), as SQLite's 0013: a page of
-- `bridge events list` reads one index in the order it prints (newest received first, the
-- event id breaking ties), and `bridge status` reads counts kept as the log changes.

-- The listing's indexes end in the id, so ties of received_at come out in order too.
DROP INDEX events_received;
DROP INDEX events_status_received;
DROP INDEX events_source_received;
CREATE INDEX events_received ON events (received_at, id);
CREATE INDEX events_status_received ON events (status, received_at, id);
CREATE INDEX events_source_received ON events (source, received_at, id);

-- By target, the listing walks the links: each carries its delivery's target and status and
-- its event's reception, copied by the triggers below (the writers insert the link as
-- before). Intake holds the delivery it joins FOR UPDATE, so the status a new link copies
-- cannot change before the link is committed.
ALTER TABLE delivery_events
    ADD COLUMN target TEXT,
    ADD COLUMN status TEXT,
    ADD COLUMN received_at DOUBLE PRECISION;
UPDATE delivery_events de SET target = d.target, status = d.status, received_at = e.received_at
FROM deliveries d, events e WHERE d.id = de.delivery_id AND e.id = de.event_id;
CREATE INDEX delivery_events_target ON delivery_events (target, received_at, event_id);
CREATE INDEX delivery_events_target_status
    ON delivery_events (target, status, received_at, event_id);

CREATE FUNCTION copy_link_listing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.target, d.status INTO NEW.target, NEW.status
    FROM deliveries d WHERE d.id = NEW.delivery_id;
    SELECT e.received_at INTO NEW.received_at FROM events e WHERE e.id = NEW.event_id;
    RETURN NEW;
END $$;
-- A writer may give them itself (bulk loads).
CREATE TRIGGER delivery_events_listed BEFORE INSERT ON delivery_events
    FOR EACH ROW WHEN (NEW.target IS NULL) EXECUTE FUNCTION copy_link_listing();

CREATE FUNCTION copy_link_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE delivery_events SET status = NEW.status WHERE delivery_id = NEW.id;
    RETURN NULL;
END $$;
-- Every status change of a delivery reaches its links (a delivery's target never changes).
CREATE TRIGGER deliveries_status_listed AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION copy_link_status();

-- `bridge status`: the oldest waiting delivery of a target, without reading done ones.
CREATE INDEX deliveries_waiting ON deliveries (target, status, created_at)
    WHERE status IN ('pending', 'retry');

-- Counts per status: events (target '') and deliveries per target. Several instances
-- write at once, so a change never updates a row another writer updates (each would wait
-- for the one before it to commit, and two could deadlock): each database session (a
-- connection of an instance's pool) keeps its own row per cell, under its backend's pid,
-- and a reader sums the rows of its snapshot, exact whatever commits around it. A row is
-- only ever changed by its own session, in place (no index changes: HOT updates, pruned on
-- the page as it goes), so the table stays as small as sessions x cells. The rows of
-- sessions that are gone are folded into backend 0 when a new session starts counting.
CREATE TABLE log_counts (
    backend INTEGER NOT NULL,  -- pg_backend_pid() of the session counting; 0: folded
    tally   TEXT NOT NULL,     -- 'events' or 'deliveries'
    target  TEXT NOT NULL,     -- a delivery's target; '' for events
    status  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (backend, tally, target, status)
);
INSERT INTO log_counts SELECT 0, 'events', '', status, count(*) FROM events GROUP BY status;
INSERT INTO log_counts
SELECT 0, 'deliveries', target, status, count(*) FROM deliveries GROUP BY target, status;

-- Fold the rows of sessions that are gone into backend 0. One folder at a time (another
-- transaction folding makes this one skip it), and it never waits: a row another
-- transaction holds is left for the next fold, so folding cannot deadlock with the writes
-- it rides on. The rows it deletes and the sums it adds commit or roll back together.
CREATE FUNCTION fold_log_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- the advisory key is 'counts' in ASCII (the migrations' is 'bridge')
    IF NOT pg_try_advisory_xact_lock(x'636f756e7473'::bigint) THEN
        RETURN;
    END IF;
    WITH gone AS (
        DELETE FROM log_counts c WHERE (c.backend, c.tally, c.target, c.status) IN (
            SELECT backend, tally, target, status FROM log_counts
            WHERE backend != 0
              AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
            FOR UPDATE SKIP LOCKED)
        RETURNING c.tally, c.target, c.status, c.n)
    INSERT INTO log_counts (backend, tally, target, status, n)
    SELECT 0, tally, target, status, sum(n) FROM gone GROUP BY tally, target, status
    ON CONFLICT (backend, tally, target, status) DO UPDATE SET n = log_counts.n + excluded.n;
END $$;

-- Count ``delta`` in this session's row of a cell (made, and the gone folded, on its first
-- change there).
CREATE FUNCTION count_log(tally TEXT, target TEXT, status TEXT, delta BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_counts c SET n = c.n + delta
    WHERE c.backend = pg_backend_pid() AND c.tally = count_log.tally
      AND c.target = count_log.target AND c.status = count_log.status;
    IF NOT FOUND THEN
        INSERT INTO log_counts VALUES (pg_backend_pid(), tally, target, status, delta);
        PERFORM fold_log_counts();
    END IF;
END $$;

-- Inserts and status changes are counted per row (intake's statements insert one row);
-- deletes per statement (a prune deletes hundreds of rows at once).
CREATE FUNCTION count_event_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('events', '', NEW.status, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER events_counted_in AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION count_event_in();

CREATE FUNCTION count_event_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('events', '', OLD.status, -1);
    PERFORM count_log('events', '', NEW.status, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER events_counted_moved AFTER UPDATE OF status ON events
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION count_event_moved();

CREATE FUNCTION count_events_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('events', '', o.status, -count(*)) FROM old_rows o GROUP BY o.status;
    RETURN NULL;
END $$;
CREATE TRIGGER events_counted_out AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_events_out();

CREATE FUNCTION count_delivery_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('deliveries', NEW.target, NEW.status, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_counted_in AFTER INSERT ON deliveries
    FOR EACH ROW EXECUTE FUNCTION count_delivery_in();

CREATE FUNCTION count_delivery_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('deliveries', OLD.target, OLD.status, -1);
    PERFORM count_log('deliveries', NEW.target, NEW.status, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_counted_moved AFTER UPDATE OF status, target ON deliveries
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.target IS DISTINCT FROM NEW.target)
    EXECUTE FUNCTION count_delivery_moved();

CREATE FUNCTION count_deliveries_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count_log('deliveries', o.target, o.status, -count(*))
    FROM old_rows o GROUP BY o.target, o.status;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_counted_out AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION count_deliveries_out();
