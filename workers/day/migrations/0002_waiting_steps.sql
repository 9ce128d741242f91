-- Close-of-business steps run one after another: a step not asked yet is `waiting`.
ALTER TABLE cob_step DROP CONSTRAINT cob_step_status_check;
ALTER TABLE cob_step ADD CONSTRAINT cob_step_status_check CHECK (status IN ('waiting', 'pending', 'done', 'failed'));
