-- relaymesh schema 14: which own events some peer may still lack, as rows of
-- a small table of their own instead of a flag on the log row.
--
-- The flag made every ack batch rewrite each acked log row (a new tuple and
-- an entry in every index of the log: it sat in a partial index's predicate,
-- so the update was never HOT), and put every other origin's row, for which
-- it meant nothing, into that index. A row here is inserted with its own log
-- row and deleted once every peer holds the event; relayd resends, at start,
-- the own events that still have one.
--
-- seq leads the key: every row has the same origin, so an index led by it
-- gave the planner a plan that reads the whole table to delete one ack
-- batch when its statistics were missing (a new database in a flood).
CREATE TABLE relay_unreplicated (
  origin text   NOT NULL,
  seq    bigint NOT NULL,
  PRIMARY KEY (seq, origin)
);
INSERT INTO relay_unreplicated (origin, seq)
SELECT l.origin, l.seq FROM relay_event_log l JOIN relay_node n USING (origin)
WHERE NOT l.replicated;
ALTER TABLE relay_event_log DROP COLUMN replicated;
