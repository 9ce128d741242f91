-- Loan applications (banking-rules §5; workers/loan/domain/applications.py).

-- What the loan worker learns of customers and accounts from their events (never asked): whether
-- a customer may borrow, and whether an account may carry a loan. occurred_at of the newest event
-- applied: an older one arriving late changes nothing.
CREATE TABLE loan_customer (
    customer_id  uuid        PRIMARY KEY,
    status       text        NOT NULL,
    kyc_status   text        NOT NULL,
    as_of        timestamptz NOT NULL
);

CREATE TABLE loan_account (
    account_id   uuid        PRIMARY KEY,
    customer_id  uuid        NOT NULL,
    currency     char(3)     NOT NULL,
    status       text        NOT NULL,
    as_of        timestamptz NOT NULL
);

-- One row per application: its view as the domain keeps it, and the request that made it (a
-- retry with the same body answers the draft; another body is application_exists).
CREATE TABLE loan_application (
    application_id  uuid        PRIMARY KEY,
    customer_id     uuid        NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('draft', 'submitted', 'under_review', 'approved', 'rejected', 'cancelled')),
    request         jsonb       NOT NULL,
    view            jsonb       NOT NULL,  -- contracts.loan.LoanApplicationView
    updated_at      timestamptz NOT NULL
);
CREATE INDEX loan_application_by_customer ON loan_application (customer_id);
