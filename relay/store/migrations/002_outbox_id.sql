-- relaymesh schema 2: which outbox row became which event, so that the
-- program that inserted the row (relayctl send --wait) can follow it.
ALTER TABLE relay_event_log ADD COLUMN outbox_id bigint;
CREATE INDEX relay_event_log_outbox_id ON relay_event_log (outbox_id) WHERE outbox_id IS NOT NULL;
