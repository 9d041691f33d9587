-- relaymesh schema 16: the all-clears among the log's rows, by when they were
-- stored, so that relay-runner can tell cheaply whether a row it is about to
-- hand to a handler was cleared meanwhile (a few rows, however long the log).
CREATE INDEX relay_event_log_clears ON relay_event_log (stored_at) WHERE kind = 3;
