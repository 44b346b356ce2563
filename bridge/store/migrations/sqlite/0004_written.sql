-- What the bridge last wrote for an entity into a target (a digest of the mapped document):
-- the last guard against echoes and repeated writes (PRODUCT 3.3). A delivery whose mapped
-- document equals it is done without a write.
CREATE TABLE written (
    target     TEXT NOT NULL,
    source     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, source, entity, entity_id)
);
