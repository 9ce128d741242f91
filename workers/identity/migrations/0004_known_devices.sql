-- The devices each login has signed in from with a password (issue 13: new-device sign-in
-- alerts; contracts/identity.py IssueToken, NewDeviceLogin). A device is the fingerprint the edge
-- made (SHA-256 of `X-Device-Id`, else of the User-Agent without its version numbers): the raw
-- identifier is never here. Bounded by the schema: a login has 20 slots (MAX_KNOWN_DEVICES); a new
-- device past them takes the least recently seen device's slot (workers/identity/domain.py
-- plan_device), so a row is overwritten, never deleted (the runtime role has no DELETE).
CREATE TABLE known_device (
    user_id       uuid        NOT NULL REFERENCES users,
    slot          integer     NOT NULL CHECK (slot >= 0 AND slot < 20),
    fingerprint   text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    label         text        NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    last_address  text        CHECK (length(last_address) <= 45),
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    PRIMARY KEY (user_id, slot),
    UNIQUE (user_id, fingerprint),
    CHECK (last_seen >= first_seen)
);
