-- Who asked, as well as what: an idempotency key belongs to its asker (the edge's authenticated
-- person, a partner, a service). A different asker under a used key is answered
-- `idempotency_key_reused`, never with the first asker's reply, and only the asker may read an
-- operation's stored reply. Rows from before this column keep '' (any asker, as before).
ALTER TABLE inbox ADD COLUMN requester text NOT NULL DEFAULT '';
