-- Version 10: Slack Socket Mode.
--
-- A Slack connection's app-level token (`xapp-`, scope `connections:write`),
-- stored as its source (env:, file:, value:) like the bot token. With one,
-- `pagehook serve` receives the connection's events and slash commands
-- over Socket Mode's outbound WebSocket.
ALTER TABLE connections ADD COLUMN app_token TEXT;
