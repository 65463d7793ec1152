-- Version 15: Teams bot connections and the conversations they can write in.
--
-- connections: kind 'teams-bot' (a single-tenant Microsoft Entra app
-- registered as an Azure Bot), with its app id and tenant id. SQLite cannot
-- change a CHECK, so the table is rebuilt with every column it had.
CREATE TABLE connections_v15 (
    name             TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('slack', 'teams', 'teams-bot', 'confluence')),
    url              TEXT NOT NULL,
    username         TEXT,
    secret           TEXT,
    hook_secret      TEXT,
    dry_run          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    health_error     TEXT,
    token_name       TEXT,
    token_expires_at INTEGER,
    token_checked_at INTEGER,
    confluence       TEXT,
    app_token        TEXT,
    proxy            TEXT,
    app_id           TEXT,
    tenant_id        TEXT
);
INSERT INTO connections_v15 (name, kind, url, username, secret, hook_secret, dry_run, created_at,
    health_error, token_name, token_expires_at, token_checked_at, confluence, app_token, proxy)
SELECT name, kind, url, username, secret, hook_secret, dry_run, created_at,
    health_error, token_name, token_expires_at, token_checked_at, confluence, app_token, proxy
FROM connections;
DROP TABLE connections;
ALTER TABLE connections_v15 RENAME TO connections;

-- teams_conversations: a Teams user's 1:1 conversation with a bot, from
-- the installationUpdate / conversationUpdate (or a message) Teams sent:
-- what a proactive message needs (service URL, tenant, conversation id)
-- and what matches the person to Confluence (email or user principal name,
-- read from the Bot Connector's member lookup). Removed when they
-- uninstall the bot.
CREATE TABLE teams_conversations (
    connection      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    aad_object_id   TEXT,
    tenant_id       TEXT NOT NULL,
    service_url     TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    name            TEXT,
    email           TEXT,
    upn             TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (connection, user_id)
);
CREATE INDEX teams_conversations_email ON teams_conversations (connection, email);
CREATE INDEX teams_conversations_upn ON teams_conversations (connection, upn);
