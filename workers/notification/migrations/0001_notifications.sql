-- The notification worker (banking-rules §6; contracts/notification.py): what it learnt of
-- recipients, their preferences, templates, webhook endpoints, every notification decided, and
-- one delivery-log row per attempt.

-- Addresses learnt from customer.registered / customer.updated; accounts' holders from account.opened.
CREATE TABLE recipient (
    customer_id  uuid        PRIMARY KEY,
    name         text        NOT NULL,
    email        text,
    phone        text,
    language     text        NOT NULL DEFAULT 'en',
    updated_at   timestamptz NOT NULL
);

CREATE TABLE account_holder (
    account_id   uuid PRIMARY KEY,
    customer_id  uuid NOT NULL,
    number       text NOT NULL
);

-- Stored as a whole; no row: the defaults (all on but marketing, which needs consent).
CREATE TABLE preference (
    customer_id        uuid        PRIMARY KEY,
    rules              jsonb       NOT NULL DEFAULT '[]',
    marketing_consent  boolean     NOT NULL DEFAULT false,
    language           text,
    time_zone          text,
    quiet_start        time        NOT NULL DEFAULT '22:00',
    quiet_end          time        NOT NULL DEFAULT '07:00',
    updated_at         timestamptz NOT NULL
);

-- Versions are never changed: an officer adds the next one.
CREATE TABLE template (
    key         text        NOT NULL,
    language    text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    subject     text        NOT NULL,
    body        text        NOT NULL,
    html        text,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (key, language, version)
);

CREATE TABLE webhook_endpoint (
    endpoint_id           uuid        PRIMARY KEY,
    url                   text        NOT NULL,
    secret                text        NOT NULL,
    categories            text[]      NOT NULL,
    customer_id           uuid,
    owner                 text        NOT NULL,
    enabled               boolean     NOT NULL DEFAULT true,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    disabled_at           timestamptz,
    created_at            timestamptz NOT NULL
);

CREATE TABLE notification (
    notification_id  uuid        PRIMARY KEY,
    customer_id      uuid,
    endpoint_id      uuid REFERENCES webhook_endpoint,
    address          text,
    channel          text        NOT NULL CHECK (channel IN ('email', 'sms', 'webhook', 'in_app')),
    category         text        NOT NULL,
    priority         text        NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    template         text        NOT NULL,
    template_version integer,
    language         text        NOT NULL,
    subject          text        NOT NULL DEFAULT '',
    body             text        NOT NULL DEFAULT '',
    html             text,
    payload          jsonb,
    status           text        NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'retry',
                                                            'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    scheduled_at     timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    read_at          timestamptz,
    error_code       text,
    error            text,
    correlation_id   text,
    cause            text        NOT NULL  -- message_id of the event or command that made it
);
CREATE INDEX notification_due ON notification (scheduled_at) WHERE status IN ('pending', 'retry');
CREATE INDEX notification_sending ON notification (updated_at) WHERE status = 'sending';
CREATE INDEX notification_inbox ON notification (customer_id, created_at DESC) WHERE channel = 'in_app';
CREATE INDEX notification_today ON notification (customer_id, channel, created_at);

-- One row per attempt. `sending` is written and committed before the message leaves; a sender
-- that dies mid-send leaves it `sending`, and after the lease it turns `interrupted` (the next
-- attempt is a new row): each attempt is sent at most once.
CREATE TABLE delivery_attempt (
    notification_id      uuid        NOT NULL REFERENCES notification,
    attempt              integer     NOT NULL CHECK (attempt >= 1),
    channel              text        NOT NULL,
    provider             text        NOT NULL,
    sender               text        NOT NULL,  -- the process instance that claimed it
    status               text        NOT NULL CHECK (status IN ('sending', 'ok', 'failed', 'interrupted')),
    provider_message_id  text,
    response             text,
    error_code           text,
    retry_after_s        double precision,
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz,
    duration_ms          integer,
    PRIMARY KEY (notification_id, attempt)
);
CREATE INDEX delivery_attempt_provider ON delivery_attempt (provider, started_at);
CREATE INDEX delivery_attempt_sending ON delivery_attempt (sender) WHERE status = 'sending';

-- The development SMS provider's "network": what an operator reads instead of a phone.
CREATE TABLE sms_message (
    seq              bigserial   PRIMARY KEY,
    notification_id  uuid        NOT NULL,
    attempt          integer     NOT NULL,
    phone            text        NOT NULL,
    body             text        NOT NULL,
    created_at       timestamptz NOT NULL
);
