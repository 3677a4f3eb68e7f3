-- Gatehouse identity store, schema version 3: upstream refresh tokens for group re-sync.
-- Same portable SQL as 0001. A session may be issued from another one (the CLI session from
-- the browser login that approved it, a device session from the CLI session it enrolled
-- with): `parent_id`, so everything resting on one upstream login can be found and revoked.
-- `upstream_grants` holds the refresh token an upstream provider gave the browser login
-- `session_id`; it is a secret (never logged, never in the admin API).

ALTER TABLE sessions ADD COLUMN parent_id TEXT REFERENCES sessions (id);
CREATE INDEX sessions_parent ON sessions (parent_id);

CREATE TABLE upstream_grants (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    idp TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    synced_at BIGINT
);
CREATE INDEX upstream_grants_user ON upstream_grants (user_id);
