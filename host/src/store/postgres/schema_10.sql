-- Version 10: Teams bot connections and the conversations they can write in
-- (SQLite's version 15).
ALTER TABLE connections DROP CONSTRAINT IF EXISTS connections_kind_check;
ALTER TABLE connections ADD CONSTRAINT connections_kind_check
    CHECK (kind IN ('slack', 'teams', 'teams-bot', 'confluence'));
ALTER TABLE connections ADD COLUMN app_id TEXT;
ALTER TABLE connections ADD COLUMN tenant_id TEXT;

-- A Teams user's 1:1 conversation with a bot: what a proactive message
-- needs and what matches the person to Confluence.
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
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (connection, user_id)
);
CREATE INDEX teams_conversations_email ON teams_conversations (connection, email);
CREATE INDEX teams_conversations_upn ON teams_conversations (connection, upn);
