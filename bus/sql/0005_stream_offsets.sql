-- Where a worker has read a RabbitMQ stream to (bus/streams.py). AMQP 0.9.1 keeps no consumer
-- offset, so the reader keeps it here, moved in the same transaction as what a batch wrote:
-- each message of the stream is applied once, whatever crashes when.
CREATE TABLE stream_offset (
    stream text PRIMARY KEY,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),  -- the first offset not yet applied
    messages_applied bigint NOT NULL DEFAULT 0,
    gaps bigint NOT NULL DEFAULT 0,                        -- times retention removed unread messages
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
