-- Version 6: claims. Dispatch claims events and delivery leases lanes with a
-- token per round and a lease that ends at `claim_until` / `until_ms` (ms);
-- a result is recorded only while the row still carries the round's token.
-- Slack's rates are theoretical arrival times per channel and workspace.
-- On SQLite one server runs at a time, so claims matter only across its
-- own restarts; the same columns exist on PostgreSQL, where replicas share.

ALTER TABLE events ADD COLUMN claim_token INTEGER;
ALTER TABLE events ADD COLUMN claimed_by TEXT;
ALTER TABLE events ADD COLUMN claim_until INTEGER;

ALTER TABLE deliveries ADD COLUMN claim_token INTEGER;
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;

-- Deliveries still to send, in the order their lanes keep: by event, then
-- by id (replicas may write an older event's deliveries after a newer's).
CREATE INDEX deliveries_lane_order ON deliveries (event_id, id) WHERE status IN ('pending', 'sending');

-- The oldest event not yet dispatched holds back the deliveries of newer
-- ones, so a lane's messages keep the events' order.
CREATE INDEX events_undispatched ON events (id) WHERE status = 'pending' AND attempts = 0;

CREATE TABLE lane_leases (
    lane     TEXT PRIMARY KEY,
    replica  TEXT NOT NULL,
    token    INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
);

CREATE TABLE rate_limits (
    key    TEXT PRIMARY KEY,
    tat_ms INTEGER NOT NULL
);
