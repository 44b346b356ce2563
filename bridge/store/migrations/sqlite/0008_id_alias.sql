-- An id that now means another in the same system: RetailCRM merged the entity into that
-- one (`combinedTo`, issue 12.8). Look-ups of the absorbed id follow it to the survivor.
CREATE TABLE id_alias (
    entity     TEXT NOT NULL,
    system     TEXT NOT NULL,
    alias_id   TEXT NOT NULL,   -- the absorbed id
    target_id  TEXT NOT NULL,   -- the id it now means
    created_at REAL NOT NULL,
    PRIMARY KEY (entity, system, alias_id)
);
