-- The Idempotency-Key records of 0001 were never used: reservations keep their own key
-- (reservations.idempotency_key) and the targets' operation keys live on the deliveries.
DROP TABLE IF EXISTS idempotency;
