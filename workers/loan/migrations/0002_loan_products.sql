-- Loan products as data (banking-rules §5; workers/loan/domain/products.py): each version of a
-- product's terms, as an officer defined it. Applications are made under the newest; loans keep theirs.
CREATE TABLE loan_product_version (
    code        text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    type        text        NOT NULL CHECK (type IN ('personal', 'home', 'auto', 'education', 'business', 'gold')),
    currency    char(3)     NOT NULL,
    terms       jsonb       NOT NULL,  -- contracts.loan.LoanProductTerms
    defined_by  text        NOT NULL,
    defined_at  timestamptz NOT NULL,
    PRIMARY KEY (code, version)
);
