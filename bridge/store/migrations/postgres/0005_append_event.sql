-- Intake in one statement per event (issue 15): what ``bridge.store.postgres.intake`` did
-- in four to six round trips (insert the event, then per target lift, find the waiting
-- delivery, insert one, link) is one call of append_event, so a group of events is sent
-- at once (psycopg's pipeline) and answered by one sync. The statements are those intake
-- sent before (and SQLite's intake still runs: bridge/store/sqlite/sql.py), in the same
-- order and with the same locks; the caller still holds the entities' advisory locks
-- first (LOCK_ENTITIES, the whole group in key order). A change joins the waiting delivery
-- only if it was never attempted (an attempt may have landed), locked FOR UPDATE so a claim
-- running at once either took it first or skips it until the change is joined. The link
-- is given its listing columns here (the delivery it joins is pending), so
-- delivery_events_listed does not read them back.
-- A live change lifts its entity's backfilled deliveries still waiting on
-- every append. Its generic plan (a prepared statement's, and every plan of a PL/pgSQL
-- function after five calls) read deliveries_waiting by target alone: every waiting
-- delivery of the target, per event, so intake slowed as a backlog grew (2,000 appends
-- took 1.18 s with 5,000 waiting, 0.18 s with this index). Backfilled waiting deliveries
-- are few, and this index holds them only.
CREATE INDEX deliveries_backfilled_waiting ON deliveries (target, entity_key)
    WHERE priority > 0 AND status IN ('pending', 'retry');

CREATE FUNCTION append_event(
    p_source TEXT, p_source_key TEXT, p_entity TEXT, p_entity_id TEXT, p_action TEXT,
    p_payload TEXT, p_status TEXT, p_reason TEXT, p_now DOUBLE PRECISION, p_backfill BIGINT,
    p_entity_key TEXT, p_targets TEXT[], p_priority INTEGER,
    OUT event_id BIGINT, OUT duplicate BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    t TEXT;
    did BIGINT;
BEGIN
    INSERT INTO events (source, source_key, entity, entity_id, action, payload, status,
                        reason, received_at, updated_at, backfill)
    VALUES (p_source, p_source_key, p_entity, p_entity_id, p_action, p_payload, p_status,
            p_reason, p_now, p_now, p_backfill)
    ON CONFLICT (source, source_key) DO NOTHING
    RETURNING id INTO event_id;
    IF event_id IS NULL THEN
        -- Stored before (by this instance or another, committed: READ COMMITTED reads it).
        SELECT e.id INTO event_id FROM events e
        WHERE e.source = p_source AND e.source_key = p_source_key;
        duplicate := TRUE;
        RETURN;
    END IF;
    duplicate := FALSE;
    FOREACH t IN ARRAY p_targets LOOP
        IF p_priority = 0 THEN
            -- A live change lifts the entity's backfilled deliveries still waiting.
            UPDATE deliveries SET priority = 0
            WHERE target = t AND entity_key = p_entity_key AND priority > 0
              AND status IN ('pending', 'retry');
        END IF;
        did := NULL;
        SELECT d.id INTO did FROM deliveries d
        WHERE d.target = t AND d.entity_key = p_entity_key AND d.status = 'pending'
          AND d.attempts = 0
        ORDER BY d.id DESC LIMIT 1
        FOR UPDATE;
        IF did IS NULL THEN
            INSERT INTO deliveries (target, source, entity, entity_id, entity_key, status,
                                    due_at, created_at, updated_at, priority)
            VALUES (t, p_source, p_entity, p_entity_id, p_entity_key, 'pending', p_now,
                    p_now, p_now, p_priority)
            RETURNING id INTO did;
        END IF;
        INSERT INTO delivery_events (delivery_id, event_id, target, status, received_at)
        VALUES (did, event_id, t, 'pending', p_now);
    END LOOP;
END $$;
