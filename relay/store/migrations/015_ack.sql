-- relaymesh schema 15: a person acknowledges an alert with one outbox insert,
-- like every other alert (docs/wire-v3.md; README.md, "Acknowledging an
-- alert"): kind 'ack', refs naming the one event it answers, ack saying
-- how (NULL: responding), sender who, body an optional note. The targets
-- and the priority come from the acknowledged event, which this site must
-- hold; the row's own are not used.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
  CHECK (kind IN ('notification', 'duress', 'all-clear', 'test', 'ack'));
ALTER TABLE outbox ADD COLUMN ack text CHECK (ack IN ('responding', 'resolved'));
-- An acknowledgement is claimed early, whatever its priority column says:
-- it may answer a duress, and which one it answers is known only once the
-- claim reads the log (it then travels at that event's priority). It ranks
-- with emergencies, below every duress: a burst of acknowledgements never
-- holds back a duress pressed after them. One of a bulk notice claimed early
-- costs nothing. As in 011, the generated column and its index are made
-- again.
DROP INDEX outbox_claim;
ALTER TABLE outbox DROP COLUMN rank;
ALTER TABLE outbox ADD COLUMN rank smallint GENERATED ALWAYS AS (
  CASE WHEN kind = 'duress' THEN 4
       WHEN kind = 'ack' THEN 3
       ELSE CASE coalesce(priority, 'normal')
              WHEN 'duress' THEN 4 WHEN 'emergency' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END
  END) STORED;
CREATE INDEX outbox_claim ON outbox (rank DESC, id);
-- Acknowledgements of an event are found by kind (relayctl receipts, send
-- --until acknowledged): an index over those rows alone stays tiny, and
-- costs the other inserts only its predicate.
CREATE INDEX relay_event_log_acks ON relay_event_log (stored_at) WHERE kind = 7;
