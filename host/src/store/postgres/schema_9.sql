-- Version 9: the limit requests an admin granted a plugin.
--
-- JSON (a manifest's [limits] keys). Installing grants what that version
-- requests; an upgrade keeps the grant, so a new version that asks for
-- more runs held to it until an admin grants the new request. NULL (rows
-- from before): the installed manifest's requests, which were in force.
ALTER TABLE plugins ADD COLUMN limit_grants TEXT;
