-- A saga step's command asked again when no answer came (bus/saga.py, `reask_unanswered`): how
-- many times, so each ask waits twice as long as the one before.
ALTER TABLE saga_step ADD COLUMN reasked integer NOT NULL DEFAULT 0;
