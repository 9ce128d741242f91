-- Products as data (banking-rules §2): each version of each product's terms, defined by an officer
-- (`account.define_product`) or shipped (version 1 of savings and current, written at start).
-- An account keeps the version it opened under.
CREATE TABLE product_version (
    code        text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    type        text        NOT NULL CHECK (type IN ('savings', 'current')),
    currency    char(3)     NOT NULL,
    terms       jsonb       NOT NULL,  -- contracts.account.ProductTerms
    defined_by  text        NOT NULL,
    defined_at  timestamptz NOT NULL,
    PRIMARY KEY (code, version)
);

ALTER TABLE account ADD COLUMN product_version integer NOT NULL DEFAULT 1;
