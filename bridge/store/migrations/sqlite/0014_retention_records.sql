-- Retention of what grows beside the log (store.retention: reservations_after, sms_after;
-- `bridge purge --records`): final reservations with their history and owed calls, done
-- owed calls of no reservation, SMS sends and the sandbox outbox, oldest first, a few
-- hundred per transaction.

-- The prune walks the final statuses by their last change (a final reservation's
-- updated_at is when it became final, or when a return last moved it).
CREATE INDEX reservations_status_updated ON reservations (status, updated_at);
-- Finished owed calls by their last change (when they became done or dead).
CREATE INDEX owed_calls_status_updated ON owed_calls (status, updated_at);
-- Sends by age alone (sms_sends_phone serves the per-phone cap).
CREATE INDEX sms_sends_at ON sms_sends (at);

-- A reservation's history stays append-only while the reservation is kept: a line may go
-- only together with its reservation, once that is no longer stored.
DROP TRIGGER reservation_history_no_delete;
CREATE TRIGGER reservation_history_no_delete BEFORE DELETE ON reservation_history
WHEN EXISTS (SELECT 1 FROM reservations WHERE id = OLD.reservation_id)
BEGIN SELECT RAISE(ABORT, 'history is append-only while its reservation is kept'); END;
