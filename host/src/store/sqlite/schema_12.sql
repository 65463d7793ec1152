-- Version 12: digests (bursts of a binding's events held and handed to its
-- plugin together).
--
-- binding_digests: a binding's digest settings; no row means the defaults
-- (on, threshold 20, window 300 s). held_events: an event held for a
-- binding instead of being run at once, written in the transaction that
-- marks the event dispatched; released (released_at) in the transaction
-- that writes what the plugin made of it, with the event whose deliveries
-- carry it (released_with). Released rows stay a day, so bursts are measured
-- over the window and the console can say where an event went.
CREATE TABLE binding_digests (
    binding_id  INTEGER PRIMARY KEY REFERENCES bindings (id) ON DELETE CASCADE,
    enabled     INTEGER NOT NULL,
    threshold   INTEGER NOT NULL,
    window_secs INTEGER NOT NULL
);
CREATE TABLE held_events (
    id            INTEGER PRIMARY KEY,
    binding_id    INTEGER NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    event_id      INTEGER NOT NULL REFERENCES events (id),
    space_key     TEXT NOT NULL,
    page_update   INTEGER,
    held_at       INTEGER NOT NULL,
    released_at   INTEGER,
    released_with INTEGER,
    claim_token   INTEGER,
    claim_until   INTEGER,
    claimed_by    TEXT,
    UNIQUE (binding_id, event_id)
);
CREATE INDEX held_events_unreleased ON held_events (binding_id, space_key) WHERE released_at IS NULL;
CREATE INDEX held_events_by_time ON held_events (held_at);
CREATE INDEX held_events_by_event ON held_events (event_id);
