-- relaymesh schema 12: settling and pruning speak only for what they know
-- (docs/wire.md, "Settled history"; OPERATOR.md, retention).
--
-- relay_settled now keeps every range settled here without ever being
-- stored here (pruned elsewhere before this node got it, or skipped by its
-- origin), also once relay_watermarks.pruned_through has passed it: an
-- event that arrives for such a seq with its origin's signature is stored
-- as new. relay_late records the seqs of those ranges that were stored so,
-- so that they stay duplicates after the log row is pruned.
CREATE TABLE relay_late (
  origin text   NOT NULL,
  seq    bigint NOT NULL,
  PRIMARY KEY (origin, seq)
);

-- How far each peer has stored this node's own events: every own seq up to
-- own_through is held there or was never issued (its digests say so).
-- Retention prunes an own event only once every configured peer has it; a
-- peer down, degraded or never heard from counts as lacking it.
CREATE TABLE relay_peer_held (
  peer        text   PRIMARY KEY,
  own_through bigint NOT NULL DEFAULT 0
);

-- Own seqs found numbered twice and healed (docs/wire.md, "Numbering"):
-- each is healed once, whatever comes back later (a restart, a peer still
-- holding this node's version of it).
CREATE TABLE relay_healed (
  seq         bigint      PRIMARY KEY,
  healed_at   timestamptz NOT NULL DEFAULT now(),
  reissued_as bigint
);
