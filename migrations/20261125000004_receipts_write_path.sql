-- The receipt ledger is on the hot path of every watch event: keep its write cost to the primary
-- key. The batch index was never used (claims join on the primary key); pruning by age scans
-- received_at, which only ever grows, so a BRIN index serves it at a fraction of a B-tree's cost.
-- Free space on each page lets `landed = true` be a HOT update (no index write at all).
DROP INDEX IF EXISTS watch_event_receipts_batch_idx;
DROP INDEX IF EXISTS watch_event_receipts_received_idx;
CREATE INDEX watch_event_receipts_received_brin ON watch_event_receipts USING brin (received_at);
ALTER TABLE watch_event_receipts SET (fillfactor = 70);
