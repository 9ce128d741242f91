-- Logins. A password is stored only as its argon2id hash.
CREATE TABLE users (
    user_id          uuid        PRIMARY KEY,
    username         text        NOT NULL UNIQUE CHECK (username = lower(username)),
    password_hash    text        NOT NULL,
    display_name     text        NOT NULL,
    roles            text[]      NOT NULL CHECK (cardinality(roles) > 0),
    customer_id      uuid,
    status           text        NOT NULL CHECK (status IN ('active', 'disabled')),
    -- Consecutive failed password logins, and the end of a lockout they caused.
    failed_attempts  integer     NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL,
    disabled_at      timestamptz,
    CHECK (('customer' = ANY (roles)) = (customer_id IS NOT NULL)),
    CHECK ((status = 'disabled') = (disabled_at IS NOT NULL))
);
CREATE INDEX users_by_role ON users USING gin (roles);

-- Ed25519 signing keys. The private key is dropped when the key retires: it never signs again,
-- while its public half stays published until the tokens it signed have expired.
-- Production would keep private keys in a KMS or HSM and never in a table.
CREATE TABLE signing_key (
    kid          text        PRIMARY KEY,
    private_pem  text,
    public_x     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    CHECK ((retired_at IS NULL) = (private_pem IS NOT NULL))
);
-- Exactly one key signs at a time.
CREATE UNIQUE INDEX one_active_signing_key ON signing_key ((true)) WHERE retired_at IS NULL;

-- Refresh tokens, stored as SHA-256 of the opaque token. A family is one login: every token
-- rotated from it shares the family, so a reused token can revoke them all.
CREATE TABLE refresh_token (
    token_hash  text        PRIMARY KEY,
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users,
    scope       text[]      NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX refresh_token_family ON refresh_token (family_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_token_user ON refresh_token (user_id) WHERE revoked_at IS NULL;

-- API keys, stored as SHA-256 of the secret: a 256-bit random secret needs no slow hash.
CREATE TABLE api_key (
    key_id       uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users,
    name         text        NOT NULL,
    scopes       text[]      NOT NULL CHECK (cardinality(scopes) > 0),
    secret_hash  text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_key_by_user ON api_key (user_id);
