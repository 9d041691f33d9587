-- relaymesh schema 20: the receipts that say a target refused one of this
-- node's events under the mesh policy (outcome 5, OUTCOME_REFUSED), by when:
-- the status page lists the last day's, which must not cost a scan of every
-- receipt. None on a mesh that keeps its policy.
CREATE INDEX relay_receipts_refused ON relay_receipts (delivered_at) WHERE outcome = 5;
-- The all-clears and cancels by origin, by when: relay-runner asks, for each
-- row it claims, whether the row's origin ended anything since the row came
-- (relay/runner/queue.cc). Migration 018's index over every step of alerts'
-- lives would let a flood of acknowledgements make that question slow.
CREATE INDEX relay_event_log_endings ON relay_event_log (origin, stored_at) WHERE kind IN (3, 9);
