-- Version 2: delivery. Deliveries get a lane (order is kept within it), a
-- claim, a result and an "outcome unknown" flag; every attempt is recorded;
-- Slack thread keys map to the first message's ts; once-keys map to what
-- they created; connections carry their health.

ALTER TABLE deliveries ADD COLUMN lane TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN result TEXT;
ALTER TABLE deliveries ADD COLUMN sent_at INTEGER;

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    latency_ms  INTEGER NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

CREATE TABLE slack_threads (
    connection TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    ts         TEXT NOT NULL,
    PRIMARY KEY (connection, channel, thread_key)
);

CREATE TABLE once_keys (
    source     TEXT NOT NULL,
    once_key   TEXT NOT NULL,
    content_id INTEGER NOT NULL,
    PRIMARY KEY (source, once_key)
);

ALTER TABLE connections ADD COLUMN health_error TEXT;
