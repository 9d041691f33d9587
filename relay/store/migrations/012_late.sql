-- relaymesh schema 12: a settled claim only stops pulls (docs/wire.md,
-- "Settled history").
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
