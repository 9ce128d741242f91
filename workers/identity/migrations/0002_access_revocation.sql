-- What ended access before the tokens expired (contracts/identity.py `AccessRevoked`): a disabled
-- user, a logout or a reused refresh token (one login session), a revoked API key. Each row is
-- also published as `identity.access_revoked`; `identity.list_revocations` reads the recent ones
-- back for an edge that was not listening. Rows older than the window (35 minutes) are no longer
-- read; like refresh tokens, they are kept (no worker deletes rows; audit holds the events).
CREATE TABLE access_revocation (
    revocation_id  uuid        PRIMARY KEY,
    scope          text        NOT NULL CHECK (scope IN ('user', 'session', 'api_key')),
    user_id        uuid        NOT NULL REFERENCES users,
    session_id     uuid,
    key_id         uuid        REFERENCES api_key,
    reason         text        NOT NULL,
    revoked_at     timestamptz NOT NULL,
    CHECK ((scope = 'session') = (session_id IS NOT NULL)),
    CHECK ((scope = 'api_key') = (key_id IS NOT NULL))
);
-- Read as pages oldest first: (revoked_at, revocation_id) is the keyset.
CREATE INDEX access_revocation_by_time ON access_revocation (revoked_at, revocation_id);
