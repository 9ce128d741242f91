-- The notification worker's runtime role (cbs_notification), after the runner's defaults
-- (bus/migrate.py: SELECT, INSERT, UPDATE, no DELETE). Run as the owner role on every `cbs migrate`.
--
-- Template versions and the development SMS provider's messages are written once: never changed.
REVOKE UPDATE ON template, sms_message FROM cbs_notification;
