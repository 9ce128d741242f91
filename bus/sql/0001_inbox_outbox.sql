-- Applied in every worker's schema before the worker's own migrations (as version bus_0001).

-- Idempotent consumer: one row per (consumer, message_id), holding the reply it produced.
CREATE TABLE inbox (
    consumer      text        NOT NULL,
    message_id    text        NOT NULL,
    request_hash  text        NOT NULL,
    reply         jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
-- The status route looks an operation up by message_id alone.
CREATE INDEX inbox_message_id ON inbox (message_id);

-- Transactional outbox: events are written with the state change and published by the relay.
CREATE TABLE outbox (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     text        NOT NULL UNIQUE,
    routing_key    text        NOT NULL,
    message_type   text        NOT NULL,
    payload        jsonb       NOT NULL,
    headers        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
