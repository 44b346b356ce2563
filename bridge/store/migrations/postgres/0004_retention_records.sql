-- Retention of what grows beside the log, as SQLite's 0014: final reservations with their
-- history and owed calls, done owed calls of no reservation, SMS sends and the sandbox
-- outbox, oldest first, a few hundred per transaction.

-- The prune walks the final statuses by their last change.
CREATE INDEX reservations_status_updated ON reservations (status, updated_at);
-- Finished owed calls by their last change (when they became done or dead).
CREATE INDEX owed_calls_status_updated ON owed_calls (status, updated_at);
-- Sends by age alone (sms_sends_phone serves the per-phone cap).
CREATE INDEX sms_sends_at ON sms_sends (at);

-- A reservation's history stays append-only while the reservation is kept: a line may go
-- only together with its reservation, once that is no longer stored.
DROP TRIGGER reservation_history_no_update ON reservation_history;
CREATE TRIGGER reservation_history_no_update BEFORE UPDATE ON reservation_history
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE FUNCTION refuse_kept_reservation_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reservations WHERE id = OLD.reservation_id) THEN
        RAISE EXCEPTION 'history is append-only while its reservation is kept';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER reservation_history_no_delete BEFORE DELETE ON reservation_history
    FOR EACH ROW EXECUTE FUNCTION refuse_kept_reservation_history();
