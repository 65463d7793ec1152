-- Version 4: self-linking, and which Confluence a Slack connection's chat uses.
--
-- A Slack connection names the Confluence connection its chat lookups and
-- links use; NULL: the only Confluence connection with a token.
ALTER TABLE connections ADD COLUMN confluence TEXT;

-- A Slack user who proved, by signing in to Confluence, which Confluence
-- user they are. One link per Slack user of a connection; one Slack user
-- per Confluence user in a Slack connection (linking again replaces).
CREATE TABLE user_links (
    slack_connection        TEXT NOT NULL,
    slack_user              TEXT NOT NULL,
    slack_team              TEXT NOT NULL,
    confluence_connection   TEXT NOT NULL,
    confluence_user_key     TEXT NOT NULL,
    confluence_username     TEXT,
    confluence_display_name TEXT,
    method                  TEXT NOT NULL,
    linked_at               BIGINT NOT NULL,
    PRIMARY KEY (slack_connection, slack_user)
);
CREATE UNIQUE INDEX user_links_confluence
    ON user_links (confluence_connection, confluence_user_key, slack_connection);

-- One-time link requests from `/confluence link`. Only hashes: the token is
-- in the link the person was given, the confirmation secret in the browser
-- that signed in. `request_key` answers one Slack command once.
CREATE TABLE link_tokens (
    token_hash            TEXT PRIMARY KEY,
    request_key           TEXT NOT NULL UNIQUE,
    slack_connection      TEXT NOT NULL,
    slack_team            TEXT NOT NULL,
    slack_user            TEXT NOT NULL,
    confluence_connection TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    user_key              TEXT,
    username              TEXT,
    display_name          TEXT,
    confirm_hash          TEXT,
    used_at               BIGINT
);
CREATE INDEX link_tokens_expiry ON link_tokens (expires_at);
