-- relaymesh schema 18: an origin revises its own alert with one outbox insert
-- (docs/wire.md, "Updates and cancels"; README.md, "Updating or cancelling an
-- alert"): kind 'update' gives new text (title, body, location) for an open
-- alert, kind 'cancel' says it was sent in error; refs names the one own event
-- it revises. Targets and priority come from that event, as for 'ack'.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
  CHECK (kind IN ('notification', 'duress', 'all-clear', 'test', 'ack', 'update', 'cancel'));
-- Claimed early, as an acknowledgement is (migration 015): it may revise a
-- duress, and travels at that duress's priority once the claim has read it.
DROP INDEX outbox_claim;
ALTER TABLE outbox DROP COLUMN rank;
ALTER TABLE outbox ADD COLUMN rank smallint GENERATED ALWAYS AS (
  CASE WHEN kind = 'duress' THEN 4
       WHEN kind IN ('ack', 'update', 'cancel') THEN 3
       ELSE CASE coalesce(priority, 'normal')
              WHEN 'duress' THEN 4 WHEN 'emergency' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END
  END) STORED;
CREATE INDEX outbox_claim ON outbox (rank DESC, id);
-- The steps of alerts' lives among the log's rows (all-clears 3, acks 7,
-- updates 8, cancels 9, escalations 10), by when they were stored: the
-- pages derive each alert's state and history from them, and relay-runner
-- asks whether a row it is about to hand over was cancelled meanwhile. A
-- few rows however long the log, and the bulk inserts pay only the predicate.
CREATE INDEX relay_event_log_steps ON relay_event_log (stored_at) WHERE kind IN (3, 7, 8, 9, 10);
