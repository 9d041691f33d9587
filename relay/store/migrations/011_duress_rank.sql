-- relaymesh schema 11: a duress is claimed as a duress whatever its priority
-- column says. A producer that wrote priority 'bulk' on a duress row (a
-- default copied from elsewhere) had its alarm paced behind bulk, and the
-- runner, seeing a bulk priority, dead-lettered it after its retries.
-- PostgreSQL 15 cannot change a generated column's expression, so the
-- column and its index are made again (the outbox stays small).
DROP INDEX outbox_claim;
ALTER TABLE outbox DROP COLUMN rank;
ALTER TABLE outbox ADD COLUMN rank smallint GENERATED ALWAYS AS (
  CASE WHEN kind = 'duress' THEN 4
       ELSE CASE coalesce(priority, 'normal')
              WHEN 'duress' THEN 4 WHEN 'emergency' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END
  END) STORED;
CREATE INDEX outbox_claim ON outbox (rank DESC, id);
