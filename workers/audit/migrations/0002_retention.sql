-- Retention (banking-rules §7): expiry archives the record and removes its payload; the row and
-- its hashes stay, so the chain still verifies (an archived record is checked for its link only).
--
-- The trigger now allows exactly that change and nothing else, to the worker's own role too:
-- a record whose expiry has passed (by the database clock) may lose its payload once, with
-- archived_at set; every other column must stay as it was. DELETE is still refused.
CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.archived_at IS NULL
       AND NEW.archived_at IS NOT NULL
       AND NEW.archived_at <= clock_timestamp()
       AND OLD.expires_at IS NOT NULL
       AND OLD.expires_at <= NEW.archived_at
       AND NEW.payload IS NULL
       AND (to_jsonb(NEW) - 'payload' - 'archived_at') = (to_jsonb(OLD) - 'payload' - 'archived_at')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit records are append-only (an expired record may only have its payload archived)';
END $$;

-- What is left to archive, in expiry order (permanent records have no expires_at).
CREATE INDEX audit_record_to_archive ON audit_record (expires_at) WHERE archived_at IS NULL AND expires_at IS NOT NULL;
