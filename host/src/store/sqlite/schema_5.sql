-- Version 5: what Pagehook last learnt of a Confluence connection's personal
-- access token from GET /rest/pat/latest/tokens (the token's name and expiry,
-- and when it was read). Kept so an expiry can be reported, and an expired
-- token recognised, after Confluence stops answering that token. NULL until
-- the first check; reset to NULL when the connection is replaced by `connect`.
ALTER TABLE connections ADD COLUMN token_name TEXT;
ALTER TABLE connections ADD COLUMN token_expires_at INTEGER;
ALTER TABLE connections ADD COLUMN token_checked_at INTEGER;
