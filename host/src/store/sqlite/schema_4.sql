-- Version 4: several Slack workspaces. A delivery is pinned at dispatch to
-- the connection (workspace) that carries it; rows written before this
-- version have NULL and are routed at delivery time to the only Slack
-- workspace, exactly as before, so nothing pending is lost.
ALTER TABLE deliveries ADD COLUMN connection TEXT;
