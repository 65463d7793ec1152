-- Pagehook's SQLite schema, version 1. Migrations are applied in order by
-- store/mod.rs; PRAGMA user_version records the last one applied.

-- Slack workspaces, Teams workflow webhooks and Confluence instances.
-- Secrets are stored as a source: `value:<secret>`, `env:<VAR>` or `file:<path>`.
CREATE TABLE connections (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('slack', 'teams', 'confluence')),
    url         TEXT NOT NULL,
    username    TEXT,
    secret      TEXT,
    hook_secret TEXT,
    dry_run     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

-- Installed plugins: pinned hash, the admin's grants, enabled flag, breaker.
CREATE TABLE plugins (
    name          TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    description   TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    dir           TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    grants        TEXT NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    failures      INTEGER NOT NULL DEFAULT 0,
    breaker_until INTEGER,
    breaker_error TEXT,
    installed_at  INTEGER NOT NULL
);

-- Which plugin runs on which events, with which settings and destinations.
CREATE TABLE bindings (
    id           INTEGER PRIMARY KEY,
    plugin       TEXT NOT NULL REFERENCES plugins (name) ON DELETE CASCADE,
    source       TEXT,
    scope        TEXT NOT NULL,
    events       TEXT NOT NULL,
    destinations TEXT NOT NULL,
    settings     TEXT NOT NULL,
    dry_run      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

-- Every accepted webhook, durable before it is answered. `key` deduplicates
-- Confluence's re-deliveries. `event` is the enriched event plugins saw.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL,
    name          TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    payload       TEXT NOT NULL,
    event         TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_at   INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    dispatched_at INTEGER
);
CREATE INDEX events_pending ON events (status, next_try_at) WHERE status = 'pending';

-- The outbox: one row per accepted action, written in the transaction that
-- marks its event dispatched.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    binding_id  INTEGER NOT NULL,
    plugin      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    destination TEXT NOT NULL,
    action      TEXT NOT NULL,
    dry_run     INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX deliveries_status ON deliveries (status, next_try_at);

-- What each plugin asked for and whether the host allowed it.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event_id    INTEGER NOT NULL,
    binding_id  INTEGER NOT NULL,
    plugin      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    destination TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('accepted', 'rejected')),
    reason      TEXT
);

-- Plugin calls that failed, with the typed reason and the plugin's log.
CREATE TABLE failures (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    binding_id INTEGER NOT NULL,
    plugin     TEXT NOT NULL,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    log        TEXT NOT NULL
);
