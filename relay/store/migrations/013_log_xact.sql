-- relaymesh schema 13: the transaction that stored each log row, so that
-- `relayctl tail` follows the log in the order rows become visible. Rows
-- stored before this migration keep NULL (tail only shows new events); the
-- default fills it for every insert from now on, whichever path stores it.
ALTER TABLE relay_event_log ADD COLUMN stored_xact xid8;
ALTER TABLE relay_event_log ALTER COLUMN stored_xact SET DEFAULT pg_current_xact_id();
CREATE INDEX relay_event_log_stored_xact ON relay_event_log (stored_xact);
