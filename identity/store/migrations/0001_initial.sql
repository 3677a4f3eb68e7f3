-- Gatehouse identity store, schema version 1.
-- Portable SQL: SQLite and PostgreSQL both accept every statement below. Integers are BIGINT,
-- booleans are 0/1 integers, bytes are lowercase hex TEXT, JSON is TEXT, times are unix seconds.
-- Generated numbers (revisions, audit ids) come from `counters`, not from an SQLite rowid or a
-- PostgreSQL sequence, so both engines number rows the same way inside the writing transaction.

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('revision', 0);
INSERT INTO counters (name, value) VALUES ('compacted_before', 1);
INSERT INTO counters (name, value) VALUES ('audit_event', 0);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    idp TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    display_name TEXT,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (idp, subject)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE user_groups (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL REFERENCES user_groups (name) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('idp', 'admin')),
    PRIMARY KEY (user_id, group_name, source)
);
CREATE INDEX group_members_group ON group_members (group_name);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    public_key TEXT NOT NULL UNIQUE,
    os TEXT NOT NULL,
    os_version TEXT NOT NULL,
    hostname TEXT NOT NULL,
    client_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT,
    revoked_at BIGINT
);
CREATE INDEX devices_user ON devices (user_id);

-- One row per tunnel address: the primary key makes an address unique across all devices.
CREATE TABLE device_addresses (
    address TEXT PRIMARY KEY,
    prefix_len INTEGER NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    position INTEGER NOT NULL
);
CREATE INDEX device_addresses_device ON device_addresses (device_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    device_id TEXT REFERENCES devices (id),
    idp TEXT NOT NULL,
    login_method TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_device ON sessions (device_id);

CREATE TABLE service_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('machine', 'connector', 'edge')),
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE connectors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL UNIQUE REFERENCES service_tokens (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE connector_routes (
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    route TEXT NOT NULL,
    PRIMARY KEY (connector_id, position)
);

-- The active policy is the one with the highest version.
CREATE TABLE policies (
    version BIGINT PRIMARY KEY,
    format TEXT NOT NULL CHECK (format IN ('toml', 'yaml')),
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    applied_by TEXT NOT NULL
);

CREATE TABLE audit_events (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_action_at ON audit_events (action, at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_seed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Every change an edge must learn about, appended in the transaction that makes the change.
CREATE TABLE revisions (
    revision BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id TEXT NOT NULL
);
