-- Step-up one-time passwords (banking-rules §2; contracts/identity.py IssueOtp, VerifyOtp).
-- The code itself is never stored: only HMAC-SHA-256 keyed by a per-OTP random salt. A row lives
-- in the identity worker's database, so an OTP survives an edge restart and any edge replica
-- may verify it. Each OTP authorises one operation (`purpose`) and is consumed by one
-- (`consumed_by`: the payment id); rows are kept (no worker deletes rows; audit holds the facts).
CREATE TABLE otp (
    otp_id        uuid        PRIMARY KEY,
    user_id       text        NOT NULL,  -- the login that asked (token `sub`): only it may verify
    customer_id   uuid        NOT NULL,
    purpose       text        NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('sms', 'email')),
    salt          bytea       NOT NULL CHECK (length(salt) = 16),
    code_hash     bytea       NOT NULL CHECK (length(code_hash) = 32),
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer     NOT NULL CHECK (max_attempts >= 1),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    locked_at     timestamptz,
    consumed_by   text,
    consumed_at   timestamptz,
    CHECK ((consumed_by IS NULL) = (consumed_at IS NULL))
);
CREATE INDEX otp_by_user ON otp (user_id, created_at);
