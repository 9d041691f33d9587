-- relaymesh schema 20: the receipts that say a target refused one of this
-- node's events under the mesh policy (outcome 5, OUTCOME_REFUSED), by when:
-- the status page lists the last day's, which must not cost a scan of every
-- receipt. None on a mesh that keeps its policy.
CREATE INDEX relay_receipts_refused ON relay_receipts (delivered_at) WHERE outcome = 5;
