-- relaymesh schema 1: the event log, local delivery, the outbox, receipts.
-- Applied by `relayctl migrate` and at relayd start; never edited once
-- released: changes come as new numbered files.

-- Every event this node stores, its own and every other origin's (full
-- replication), as it travels: the serialized SignedEvent.
CREATE TABLE relay_event_log (
  origin     text        NOT NULL,
  seq        bigint      NOT NULL CHECK (seq > 0),
  priority   smallint    NOT NULL,
  kind       smallint    NOT NULL,
  signed     bytea       NOT NULL,
  stored_at  timestamptz NOT NULL DEFAULT now(),
  -- Own events only: every peer is known to hold it; not resent at start.
  replicated boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (origin, seq)
);
CREATE INDEX relay_event_log_unreplicated ON relay_event_log (origin, seq) WHERE NOT replicated;

-- Seqs below pruned_through were held and have been pruned from the log:
-- dedupe outlives retention (an event is never delivered twice).
CREATE TABLE relay_watermarks (
  origin         text   PRIMARY KEY,
  pruned_through bigint NOT NULL
);

-- This node's own sequence: gap-free, assigned in the claiming transaction.
CREATE TABLE relay_node (
  origin   text   PRIMARY KEY,
  next_seq bigint NOT NULL DEFAULT 1
);

-- Local consumers poll this table by type, oldest first, and delete the
-- rows they have handled. One row per event delivered here, inserted in the
-- same transaction as the log row; supervision alarms have type
-- relay.supervision and no origin.
CREATE TABLE message_queue (
  id            bigserial   PRIMARY KEY,
  date_inserted timestamptz NOT NULL DEFAULT now(),
  type          text        NOT NULL,
  data          jsonb       NOT NULL,
  origin        text,
  seq           bigint,
  priority      smallint    NOT NULL DEFAULT 2
);
CREATE INDEX message_queue_type ON message_queue (type, id);

-- Local software inserts alerts here; relayd claims them. Only the columns
-- you need: everything has a default. See README.md for the insert.
CREATE TABLE outbox (
  id            bigserial   PRIMARY KEY,
  date_inserted timestamptz NOT NULL DEFAULT now(),
  kind          text        NOT NULL DEFAULT 'notification'
                CHECK (kind IN ('notification', 'duress', 'all-clear', 'test')),
  priority      text        CHECK (priority IN ('duress', 'emergency', 'normal', 'bulk')),
  -- Claim order: the priority given, else duress for a duress, else normal.
  rank          smallint    GENERATED ALWAYS AS (
                  CASE coalesce(priority, CASE kind WHEN 'duress' THEN 'duress' ELSE 'normal' END)
                    WHEN 'duress' THEN 4 WHEN 'emergency' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END
                ) STORED,
  targets       text[]      NOT NULL DEFAULT '{all}',
  title         text        NOT NULL DEFAULT '',
  body          text        NOT NULL DEFAULT '',
  location      text        NOT NULL DEFAULT '',
  sender        text        NOT NULL DEFAULT '',
  type          text        NOT NULL DEFAULT '',
  data          jsonb       NOT NULL DEFAULT '{}',
  expires_at    timestamptz,
  refs          text[]      NOT NULL DEFAULT '{}',  -- events referred to, as 'origin:seq'
  exercise      boolean     NOT NULL DEFAULT false
);
CREATE INDEX outbox_claim ON outbox (rank DESC, id);

-- Outbox rows that cannot become events (an unknown target, too large):
-- kept with the reason, never silently dropped.
CREATE TABLE outbox_rejected (
  id          bigint      PRIMARY KEY,
  rejected_at timestamptz NOT NULL DEFAULT now(),
  reason      text        NOT NULL,
  row_data    jsonb       NOT NULL
);

-- At an origin: when each target delivered each of its events.
CREATE TABLE relay_receipts (
  origin       text        NOT NULL,
  seq          bigint      NOT NULL,
  target       text        NOT NULL,
  delivered_at timestamptz NOT NULL,
  PRIMARY KEY (origin, seq, target)
);

-- At a target: receipts the origin has not yet confirmed.
CREATE TABLE relay_receipts_owed (
  origin       text        NOT NULL,
  seq          bigint      NOT NULL,
  delivered_at timestamptz NOT NULL,
  PRIMARY KEY (origin, seq)
);
