-- relaymesh schema 3: the life of a site around the protocol.

-- What a target did with an event (relaymesh.v1.Outcome): 0 delivered,
-- 1 delivered late, 2 expired, 3 older than [delivery] max_age, 4 cleared
-- by an all-clear already held. Only 0 and 1 have a message_queue row.
ALTER TABLE relay_receipts ADD COLUMN outcome smallint NOT NULL DEFAULT 0;
ALTER TABLE relay_receipts_owed ADD COLUMN outcome smallint NOT NULL DEFAULT 0;

-- relay_watermarks.pruned_through is the settled prefix of an origin: every
-- seq up to it is pruned here, or settled without ever being held (pruned
-- everywhere before this node got it). Ranges above it that will never
-- exist (an origin skipped them after a rebuild or restore) are kept here
-- until the prefix reaches them.
CREATE TABLE relay_settled (
  origin text   NOT NULL,
  first  bigint NOT NULL,
  last   bigint NOT NULL CHECK (last >= first),
  PRIMARY KEY (origin, first)
);

-- relay.* types are the relay's own (supervision alarms and the like): site
-- software that inserts one is told at once. NOT VALID: rows already
-- waiting are refused by the claim instead.
ALTER TABLE outbox ADD CONSTRAINT outbox_type_not_reserved
  CHECK (type NOT LIKE 'relay.%') NOT VALID;
