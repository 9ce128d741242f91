-- An application's documents (issue 12; workers/loan/domain/review.py). The documents themselves,
-- with their status and review, are in the application's view (contracts.loan.ApplicationDocument);
-- this table only answers "whose is this caller-chosen document_id, and what body added it": a
-- retry with the same body answers the application, another body or another application is
-- document_exists. The document's bytes live in the bank's document store: CBS keeps its digest.
CREATE TABLE loan_application_document (
    document_id     uuid        PRIMARY KEY,
    application_id  uuid        NOT NULL REFERENCES loan_application (application_id),
    request         jsonb       NOT NULL,  -- kind, name, sha256 as asked
    added_at        timestamptz NOT NULL
);
CREATE INDEX loan_application_document_by_application ON loan_application_document (application_id);
