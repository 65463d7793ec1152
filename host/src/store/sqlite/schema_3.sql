-- Pending rows in id order. A dispatch round takes the oldest due events and
-- a delivery round the oldest pending deliveries; with only the
-- (status, next_try_at) indexes SQLite read and sorted the whole backlog
-- each round, so a backlog made every round slower. The queries name these
-- indexes (INDEXED BY) so the plan does not depend on statistics.
CREATE INDEX events_pending_order ON events (id, next_try_at) WHERE status = 'pending';
-- It replaces this one: nothing else reads pending events, and each index on
-- events is written again for every webhook stored and every event dispatched.
DROP INDEX events_pending;
CREATE INDEX deliveries_pending_order ON deliveries (id) WHERE status = 'pending';
