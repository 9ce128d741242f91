-- Customer numbers: "C" + 10 digits, formatted by the handler. A refused registration leaves a
-- gap (sequences never roll back); numbers are unique, not dense.
CREATE SEQUENCE customer_number_seq MINVALUE 1 MAXVALUE 9999999999 NO CYCLE;

-- The customer aggregate. `data` holds the whole CustomerView (documents included): the store
-- loads and saves it as one value. The columns beside it exist only for what the database must
-- enforce or find: uniqueness, lookups, search; they are rewritten from `data` on every save.
CREATE TABLE customer (
    customer_id     uuid        PRIMARY KEY,
    customer_number text        NOT NULL UNIQUE,
    email           text        NOT NULL,
    national_id     text,
    phone           text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('inactive', 'active', 'suspended', 'closed')),
    kyc_status      text        NOT NULL CHECK (kyc_status IN ('pending', 'in_progress', 'completed', 'rejected', 'expired')),
    -- lower(full name, number, email, phone, national id): what search_customers matches against.
    search_text     text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    data            jsonb       NOT NULL
);

-- The duplicate checks live here, not in a read-then-insert, so they hold under concurrency.
-- The store maps these index names to refusal codes: rename one only together with store.py.
CREATE UNIQUE INDEX customer_email_key ON customer (lower(email));
CREATE UNIQUE INDEX customer_national_id_key ON customer (national_id) WHERE national_id IS NOT NULL;

-- Search is a substring match on search_text, walked in customer_number order through its unique
-- index and cut off by the page LIMIT. No index serves '%…%' without pg_trgm, which needs a
-- superuser to install; a trigram GIN index on search_text is the upgrade when tables grow.

-- Closing a customer is refused while accounts or loans are open (banking-rules §1). Those are
-- counted from account.* and loan.* events, which this worker does not consume yet: until it
-- does, the count is zero (see handlers.close_customer).
