-- Version 11: a connection's own egress proxy.
--
-- `direct` (never through a proxy) or the proxy's http(s)://host:port,
-- without credentials; NULL: the global [network] proxy (or the
-- environment's) applies.
ALTER TABLE connections ADD COLUMN proxy TEXT;
