-- What the customer side keeps (issue 17), as SQLite's 0015: phone verifications, card
-- merges, automatic registrations and programme notices, keyed per kind.
CREATE TABLE customer_records (
    kind       text NOT NULL,
    key        text NOT NULL,
    subject    text NOT NULL,       -- the phone (E.164) the record is about
    status     text NOT NULL,
    body       text NOT NULL,       -- JSON
    version    bigint NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX customer_records_subject ON customer_records (subject, created_at);
CREATE INDEX customer_records_kind_status ON customer_records (kind, status, created_at);
