-- Accounts (and, later, loans) a customer holds, learnt from account.* events: a customer is
-- not closed while any is open. `closed` is a tombstone, so an account.closed that overtakes
-- its account.opened still wins.
CREATE TABLE open_product (
    product_id  uuid    PRIMARY KEY,
    customer_id uuid    NOT NULL,
    kind        text    NOT NULL,
    closed      boolean NOT NULL DEFAULT false
);
CREATE INDEX open_product_by_customer ON open_product (customer_id) WHERE NOT closed;
