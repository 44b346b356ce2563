-- What the customer side keeps (issue 17): phone verifications, card merges, automatic
-- registrations and programme notices, keyed per kind; body is JSON, version the
-- compare-and-set counter (bridge/store/customer_records.py).
CREATE TABLE customer_records (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    subject    TEXT NOT NULL,       -- the phone (E.164) the record is about
    status     TEXT NOT NULL,
    body       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
-- A phone's whole story (bridge customers show), and a kind's records by status (a
-- notice's pending phones, merges still running), in the order they were made.
CREATE INDEX customer_records_subject ON customer_records (subject, created_at);
CREATE INDEX customer_records_kind_status ON customer_records (kind, status, created_at);
