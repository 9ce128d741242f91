-- Applied in every worker's schema (as version bus_0003).

-- What each partner may send, learned from `partner.access_changed` events (the operator's
-- `cbs partner add/remove`). The newest `as_of` wins, whatever order the events arrive in.
-- A partner with no row, or an empty `may_send`, may send nothing.
CREATE TABLE partner_grant (
    partner   text        PRIMARY KEY,
    may_send  text[]      NOT NULL,
    as_of     timestamptz NOT NULL
);
