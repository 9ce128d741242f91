-- The audit trail (banking-rules §7): every command and event, append-only, hash-chained.
--
-- One chain: `hash = SHA-256(prev_hash || canonical JSON of the record's chained fields)`
-- (workers/audit/store.py CHAINED lists them: every column but seq, prev_hash, hash and
-- archived_at). Appends are serialized by locking the single row of audit_chain_head, which
-- also hands out `seq` without gaps, so a deleted record shows as a missing seq as well as a
-- broken link.

CREATE TABLE audit_record (
    seq               bigint      PRIMARY KEY,
    event_id          text        NOT NULL,  -- the message's message_id
    exchange          text        NOT NULL,
    routing_key       text        NOT NULL,
    message_type      text,
    kind              text        NOT NULL CHECK (kind IN ('command', 'event')),
    correlation_id    text,
    causation_id      text,                  -- header x-causation-id
    -- `sub` of the x-actor header AS CLAIMED: trusted only when broker_user is one of the
    -- edge's broker users (bus.actor.actor_of decides that; audit records both).
    actor             text,
    broker_user       text,                  -- the broker-validated AMQP user_id
    entity_type       text,
    entity_id         text,
    record_type       text        NOT NULL,
    status            text        NOT NULL,
    severity          text        NOT NULL,
    risk_score        integer     NOT NULL CHECK (risk_score BETWEEN 0 AND 100),
    retention         text        NOT NULL,
    expires_at        timestamptz,
    compliance_flags  text[]      NOT NULL,
    regulatory_tags   text[]      NOT NULL,
    -- `json`, not `jsonb`: the text is kept as written, so the record reads back exactly as it
    -- was hashed (jsonb would renormalize numbers such as 1e16).
    payload           json,                  -- redacted body; NULL when unparseable or archived
    payload_sha256    text        NOT NULL,  -- of the body as received
    payload_bytes     integer     NOT NULL,
    parse_error       text,
    recorded_at       timestamptz NOT NULL,  -- the database clock at append
    archived_at       timestamptz,           -- retention: payload removed, hashes kept (link-only check)
    prev_hash         bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash              bytea       NOT NULL CHECK (length(hash) = 32)
);

-- Idempotency: a redelivery of the same message stores nothing new.
CREATE UNIQUE INDEX audit_record_message ON audit_record (exchange, event_id);
CREATE INDEX audit_record_entity ON audit_record (entity_id, seq) WHERE entity_id IS NOT NULL;
CREATE INDEX audit_record_actor ON audit_record (actor, seq) WHERE actor IS NOT NULL;
CREATE INDEX audit_record_routing_key ON audit_record (routing_key text_pattern_ops, seq);
CREATE INDEX audit_record_recorded_at ON audit_record (recorded_at);

CREATE TABLE audit_chain_head (
    id        boolean     PRIMARY KEY DEFAULT true CHECK (id),
    last_seq  bigint      NOT NULL,
    last_hash bytea       NOT NULL CHECK (length(last_hash) = 32)
);
INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only for the worker's own role too: no UPDATE or DELETE of a record (retention, when
-- it comes, archives through a dedicated function). A superuser can still tamper, which is
-- what the chain is for.
CREATE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END $$;
CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION audit_record_append_only();
