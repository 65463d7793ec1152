-- Version 2: when each attempt's request left, at its send-time rate slot
-- (Slack messages, the database's clock), so the spacing Pagehook kept can
-- be checked.

ALTER TABLE attempts ADD COLUMN sent_at BIGINT;
