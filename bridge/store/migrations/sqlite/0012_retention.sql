-- Retention (store.retention, `bridge purge`): finished events go once their last change is
-- older than the limit, oldest first, a few hundred per transaction.

-- The prune walks one status by its last change (a done event's updated_at is when it
-- became done), so it finds the oldest without reading the rest of the log.
CREATE INDEX events_status_updated ON events (status, updated_at);

-- History stays append-only for everything the log keeps: a line may go only together
-- with its event and its delivery, once neither is stored any more (a pruned event's).
DROP TRIGGER history_no_delete;
CREATE TRIGGER history_no_delete BEFORE DELETE ON history
WHEN EXISTS (SELECT 1 FROM events WHERE id = OLD.event_id)
  OR EXISTS (SELECT 1 FROM deliveries WHERE id = OLD.delivery_id)
BEGIN SELECT RAISE(ABORT, 'history is append-only while its event or delivery is kept'); END;
