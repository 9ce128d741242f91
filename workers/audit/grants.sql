-- The audit worker's runtime role (cbs_audit), narrowed after the runner's defaults
-- (bus/migrate.py: SELECT, INSERT, UPDATE on every table of the schema). Run as the owner role
-- on every `cbs migrate`.
--
-- audit_record is append-only by privilege as well as by its trigger: the worker appends
-- (INSERT, by COPY) and reads (SELECT), and retention's one change (workers/audit/store.py
-- remove_payloads; its FOR UPDATE SKIP LOCKED needs an UPDATE privilege too) may touch only
-- payload and archived_at. The trigger (migration 0002) still decides which rows and values.
REVOKE UPDATE ON audit_record FROM cbs_audit;
GRANT UPDATE (payload, archived_at) ON audit_record TO cbs_audit;

-- The chain's single head row is made by migration 0001; appends only lock and move it.
REVOKE INSERT ON audit_chain_head FROM cbs_audit;

-- The indexes beside the chain (migration 0003) are appended to only, like the chain they index:
-- an outcome, an account named, a completed payment is written once (ON CONFLICT DO NOTHING).
-- The business date audit learnt and the investigations' workflow are updated in place.
REVOKE UPDATE ON audit_outcome, audit_record_account, audit_movement FROM cbs_audit;
