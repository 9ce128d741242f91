-- Recurring deposits (banking-rules §2; workers/account/domain/deposits.py).
ALTER TABLE account DROP CONSTRAINT account_type_check;
ALTER TABLE account ADD CONSTRAINT account_type_check
    CHECK (type IN ('savings', 'current', 'fixed_deposit', 'recurring_deposit'));
ALTER TABLE product_version DROP CONSTRAINT product_version_type_check;
ALTER TABLE product_version ADD CONSTRAINT product_version_type_check
    CHECK (type IN ('savings', 'current', 'fixed_deposit', 'recurring_deposit'));

ALTER TABLE deposit ADD COLUMN kind text NOT NULL DEFAULT 'fixed' CHECK (kind IN ('fixed', 'recurring'));
ALTER TABLE deposit ADD COLUMN instalment bigint CHECK (instalment > 0);
ALTER TABLE deposit ADD COLUMN instalments integer CHECK (instalments BETWEEN 1 AND 120);
ALTER TABLE deposit ADD CHECK ((kind = 'recurring') = (instalment IS NOT NULL AND instalments IS NOT NULL));

-- A recurring deposit's instalments: the first paid at opening, each later one taken by the close
-- of business on its due date (retried at each close while unpaid); unpaid at maturity, missed.
CREATE TABLE deposit_instalment (
    account_id   uuid        NOT NULL REFERENCES deposit (account_id),
    seq          integer     NOT NULL CHECK (seq >= 0),
    due_date     date        NOT NULL,
    amount       bigint      NOT NULL CHECK (amount > 0),
    status       text        NOT NULL CHECK (status IN ('due', 'paying', 'paid', 'missed')),
    paid_on      date,
    transfer_id  uuid,
    tried_on     date,
    error        text,
    PRIMARY KEY (account_id, seq),
    CHECK ((status = 'paid') = (paid_on IS NOT NULL))
);
CREATE INDEX deposit_instalment_due ON deposit_instalment (due_date) WHERE status = 'due';
