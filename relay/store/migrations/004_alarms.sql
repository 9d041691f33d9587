-- relaymesh schema 4: alarms about peers are durable state. A raised alarm
-- has a row here until it is cleared; its message_queue rows (raised, then
-- cleared) are written in the same transaction as the change of this table,
-- so they come in pairs, exactly once each, across restarts and retried
-- commits, and a restarted relayd knows which alarms are open.
CREATE TABLE relay_alarms (
  peer      text        NOT NULL,
  reason    text        NOT NULL,  -- 'unreachable', 'database down'
  raised_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (peer, reason)
);
