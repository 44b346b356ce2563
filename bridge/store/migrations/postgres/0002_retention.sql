-- Retention (store.retention, `bridge purge`), as SQLite's 0012: finished events go once
-- their last change is older than the limit, oldest first, a few hundred per transaction.

-- The prune walks one status by its last change, so it finds the oldest without reading
-- the rest of the log.
CREATE INDEX events_status_updated ON events (status, updated_at);

-- History stays append-only for everything the log keeps: a line may go only together
-- with its event and its delivery, once neither is stored any more (a pruned event's).
DROP TRIGGER history_no_update ON history;
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE FUNCTION refuse_kept_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM events WHERE id = OLD.event_id)
       OR EXISTS (SELECT 1 FROM deliveries WHERE id = OLD.delivery_id) THEN
        RAISE EXCEPTION 'history is append-only while its event or delivery is kept';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
    FOR EACH ROW EXECUTE FUNCTION refuse_kept_history();
