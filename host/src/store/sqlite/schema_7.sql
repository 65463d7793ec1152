-- Version 7: when each attempt's request left, at its send-time rate slot
-- (Slack messages), so the spacing Pagehook kept can be checked.

ALTER TABLE attempts ADD COLUMN sent_at INTEGER;
