-- Version 16: the teams a Teams bot is installed in (PostgreSQL's version 11).
--
-- teams_bot_teams: from the installationUpdate (or conversationUpdate) Teams
-- sends when someone adds the bot to a team: the team's id and name, the
-- channel it was added in (the conversation the bot may post a card to),
-- the tenant and the service URL. The bot reads a team's members from it
-- to start a 1:1 chat with a member who never wrote to it (a proactive
-- message). Removed when the bot is removed from the team.
CREATE TABLE teams_bot_teams (
    connection      TEXT NOT NULL,
    team_id         TEXT NOT NULL,
    team_name       TEXT,
    conversation_id TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    service_url     TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (connection, team_id)
);
