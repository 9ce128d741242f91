-- The outbox also carries commands a worker sends to another (a saga step), so they leave
-- only if the transaction that decided them commits.
ALTER TABLE outbox ADD COLUMN exchange text NOT NULL DEFAULT 'cbs.events';
ALTER TABLE outbox ADD COLUMN reply_to text;

-- A step waiting for another worker's reply. The reply arrives on `<worker>.replies` with the
-- step_id as correlation_id; the origin command is answered when the step completes.
CREATE TABLE saga_step (
    step_id               text        PRIMARY KEY,
    kind                  text        NOT NULL,
    state                 jsonb       NOT NULL,
    origin_consumer       text        NOT NULL,
    origin_message_id     text        NOT NULL,
    origin_reply_to       text,
    origin_correlation_id text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz
);
CREATE INDEX saga_step_open ON saga_step (created_at) WHERE completed_at IS NULL;
