-- relaymesh schema 17: escalation at the origin (issue 21; docs/wire.md,
-- "Escalations") reads, once a second, its own urgent events of the last
-- 24 hours and the escalations made of them. Each has an index over its
-- rows alone, as acknowledgements and all-clears do: a duress or emergency
-- row gets an entry, a flood of bulk or normal rows costs only the predicate.
CREATE INDEX relay_event_log_urgent ON relay_event_log (stored_at) WHERE priority >= 3;
CREATE INDEX relay_event_log_escalations ON relay_event_log (stored_at) WHERE kind = 10;
