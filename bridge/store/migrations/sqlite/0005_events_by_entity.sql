-- The newest stored change of an entity (may a recent read of it serve a delivery?).
CREATE INDEX events_entity ON events (source, entity, entity_id, received_at);
