-- Version 13: each lane's head, one lane at a time.
--
-- A delivery round looks at the head of every lane (its oldest delivery
-- still to send, by event then id) by walking this index a lane at a time,
-- so a lane's backlog costs a round nothing and never hides another lane.
-- It carries what a round reads of a head, so the table is not read until
-- a delivery is taken. The index by (event_id, id) it replaces served the
-- window of the oldest rows that rounds read before.
CREATE INDEX deliveries_head_order ON deliveries (lane, event_id, id, next_try_at, status) WHERE status IN ('pending', 'sending');
DROP INDEX deliveries_lane_order;
