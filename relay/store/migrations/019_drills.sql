-- relaymesh schema 19: drills supervised to the people (issue 21; docs/config.md,
-- [[drill]]). relayd reads, once a second, its own drills (exercises of kind
-- test, 4) of the last 8 days and their acknowledgements: an index over the
-- test rows alone, as acknowledgements (015) and escalations (017) have.
CREATE INDEX relay_event_log_tests ON relay_event_log (stored_at) WHERE kind = 4;
-- A site that did not acknowledge this node's last drill to it within the
-- drill's window has a row here until it acknowledges one. The relay.drill
-- message_queue rows (raised, then cleared) are written in the same
-- transaction as the change of this table, as relay_alarms does for
-- supervision: exactly once each, across restarts and kill -9.
CREATE TABLE relay_drill_alarms (
  site      text        PRIMARY KEY,
  drill     text        NOT NULL,  -- the drill not acknowledged, 'origin:seq'
  raised_at timestamptz NOT NULL DEFAULT now()
);
