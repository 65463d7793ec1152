-- Version 12: indexes that stay small under a stream of events.
--
-- A claim's deliveries were found by token through `deliveries_claimed`
-- (every row with a token), and PostgreSQL's planner, seeing `status =
-- 'sending'` beside it, combined it with a status index (BitmapAnd). A
-- status index holds an entry for every version of every row until VACUUM
-- runs, and each delivery passes through 'sending' once: at 1,000 events/s
-- that scan read some 20,000 dead entries, 1-8 ms, on each record of a lane
-- (45 million index entries read in a 20-second bench run, 18 % of the
-- server's time). A partial index on the rows being sent holds only those,
-- and matches every query that looks for them (a record's lanes, letting
-- go, a release), so nothing else is read.
DROP INDEX deliveries_claimed;
CREATE INDEX deliveries_sending ON deliveries (claim_token) WHERE status = 'sending';
-- Unused since the rounds walk `deliveries_head_order` (version 8): a
-- delivery's status is read through `deliveries_status_id`. Each index is
-- written on every write of a delivery (three per delivery sent).
DROP INDEX deliveries_status;
DROP INDEX deliveries_pending_order;
-- The same for a dispatch round's events (renewing or letting go of its
-- claim): only pending events are ever claimed.
DROP INDEX events_claimed;
CREATE INDEX events_claimed ON events (claim_token) WHERE status = 'pending' AND claim_token IS NOT NULL;
