-- relaymesh schema 10: consumer groups for relay-runner (relay/runner).
-- relayd's own insert into message_queue is unchanged: a group learns of a
-- row by reading message_queue, and keeps what it did with it here.

-- Each consumer group and the message_queue types it consumes. A row of
-- one of these types leaves message_queue only when every group listed
-- for its type is done with it (handled or dead-lettered).
CREATE TABLE runner_groups (
  name          text        PRIMARY KEY,
  types         text[]      NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now()
);

-- One group's state of one message_queue row. Rows are taken by a lease
-- (lease_until, leased_by) in a short transaction, never by a lock held
-- while the handler runs. Deleting the message_queue row (the last group
-- done, or a plain consumer) deletes these with it.
CREATE TABLE runner_rows (
  grp          text        NOT NULL REFERENCES runner_groups (name) ON DELETE CASCADE,
  queue_id     bigint      NOT NULL REFERENCES message_queue (id) ON DELETE CASCADE,
  priority     smallint    NOT NULL,
  attempts     integer     NOT NULL DEFAULT 0,
  available_at timestamptz NOT NULL DEFAULT now(),  -- retries wait for their backoff
  lease_until  timestamptz,
  leased_by    text,
  last_error   text        NOT NULL DEFAULT '',
  -- A duress that keeps failing: shown on the runner's and relayd's pages.
  alarm        boolean     NOT NULL DEFAULT false,
  done_at      timestamptz,
  dead         boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (grp, queue_id)
);
CREATE INDEX runner_rows_claim ON runner_rows (grp, priority DESC, queue_id)
  WHERE done_at IS NULL AND NOT dead;
CREATE INDEX runner_rows_queue_id ON runner_rows (queue_id);
CREATE INDEX runner_rows_alarm ON runner_rows (grp) WHERE alarm;

-- Rows a group gave up on after too many failures, with the last error.
-- Never a duress: a duress is retried for as long as it takes.
CREATE TABLE runner_dead_letters (
  grp           text        NOT NULL,
  queue_id      bigint      NOT NULL,
  type          text        NOT NULL,
  data          jsonb       NOT NULL,
  priority      smallint    NOT NULL,
  date_inserted timestamptz NOT NULL,
  attempts      integer     NOT NULL,
  last_error    text        NOT NULL,
  dead_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (grp, queue_id)
);
