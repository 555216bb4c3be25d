-- `watch_event_receipts.landed` has not been read or written since landings are recorded per batch
-- (`landed_watch_batches`, migration 20261125000005), and the 30 % of every page kept free for its
-- HOT update (migration 20261125000004) only spread the ledger over more pages. Without both, a
-- receipt is 80 bytes instead of 88 and pages are full: measured on 2.5 M receipts, 201 MB of heap
-- instead of 315 MB (the primary key is unchanged). Dropping a column rewrites nothing; new pages
-- are filled, old ones shrink as pruning replaces them.
ALTER TABLE watch_event_receipts DROP COLUMN IF EXISTS landed;
ALTER TABLE watch_event_receipts SET (fillfactor = 100);
