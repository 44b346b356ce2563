-- A reservation's owed master call keeps its attempts and due time in owed_calls (0009),
-- which carried the stored ones over: the reservation's own copies, and their index, go.
DROP INDEX IF EXISTS reservations_pending;
ALTER TABLE reservations DROP COLUMN pending_attempts;
ALTER TABLE reservations DROP COLUMN pending_due_at;
