-- Gatehouse identity store, schema version 2: access decisions edges report
-- (`POST /v1/decisions`). Same portable SQL as 0001. Times are unix milliseconds here (edges
-- decide many times a second). Ids come from the `decision` counter; a batch takes a range.
-- Not in the revision log: edges never need them back.

INSERT INTO counters (name, value) VALUES ('decision', 0);

CREATE TABLE decisions (
    id BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    -- The edge service token that sent the record (the `edge` name is the edge's own claim).
    token_id TEXT NOT NULL,
    edge TEXT NOT NULL,
    reference TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
    kind TEXT NOT NULL CHECK (kind IN ('flow', 'http', 'tls')),
    source_ip TEXT NOT NULL,
    device_id TEXT,
    user_id TEXT,
    email TEXT,
    destination TEXT NOT NULL,
    application TEXT,
    policy TEXT,
    reason TEXT NOT NULL
);
-- Newest first and paging: (at_ms, id). Filters that narrow most have their own index.
CREATE INDEX decisions_at ON decisions (at_ms, id);
CREATE INDEX decisions_email_at ON decisions (email, at_ms);
CREATE INDEX decisions_user_at ON decisions (user_id, at_ms);
CREATE INDEX decisions_device_at ON decisions (device_id, at_ms);
CREATE INDEX decisions_reference ON decisions (reference) WHERE reference IS NOT NULL;
