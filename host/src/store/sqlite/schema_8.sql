-- Version 8: the admin console.
--
-- Where an event belongs, read from its enriched form (so it is known once
-- the event is dispatched, and for every event dispatched before this
-- version): the console and the API search by space, page and kind, and a
-- space admin sees only their spaces. Generated, so no writer can forget
-- them; virtual, so only the indexes store them.
ALTER TABLE events ADD COLUMN space_key TEXT
    GENERATED ALWAYS AS (json_extract(event, '$.content.space_key')) VIRTUAL;
ALTER TABLE events ADD COLUMN content_id TEXT
    GENERATED ALWAYS AS (CAST(json_extract(event, '$.content.id') AS TEXT)) VIRTUAL;
ALTER TABLE events ADD COLUMN title TEXT
    GENERATED ALWAYS AS (json_extract(event, '$.content.title')) VIRTUAL;

-- Newest first, one filter at a time, a page at a time (keyset on id).
CREATE INDEX events_space ON events (space_key, id);
CREATE INDEX events_content ON events (content_id, id);
CREATE INDEX events_name ON events (name, id);
CREATE INDEX events_status ON events (status, id);
-- A space with a kind or a status: without these the planner takes the
-- kind's or status's index and reads every such event's space (122 ms for
-- a filter matching nothing among 100,000 events; 6.5 ms with them).
CREATE INDEX events_space_name ON events (space_key, name, id);
CREATE INDEX events_space_status ON events (space_key, status, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_destination ON deliveries (destination, id);
CREATE INDEX deliveries_plugin ON deliveries (plugin, id);
CREATE INDEX deliveries_status_id ON deliveries (status, id);

-- Console sign-ins. The cookie holds a random id; only its SHA-256 is
-- stored, so a copy of the database opens no session.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Who changed what, through the API or the console (never a secret).
CREATE TABLE changes (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
