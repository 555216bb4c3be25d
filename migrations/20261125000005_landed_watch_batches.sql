-- Landing is recorded per batch instead of per event: one row per landed batch (≈ 100 events)
-- rather than an UPDATE of every receipt. An event is counted when its receipt's batch is landed.
CREATE TABLE landed_watch_batches (
    batch_id   uuid PRIMARY KEY,
    landed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX landed_watch_batches_landed_brin ON landed_watch_batches USING brin (landed_at);

INSERT INTO landed_watch_batches (batch_id)
SELECT DISTINCT batch_id FROM watch_event_receipts WHERE landed
ON CONFLICT DO NOTHING;

ALTER TABLE watch_event_receipts DROP COLUMN landed;
ALTER TABLE watch_event_receipts RESET (fillfactor);
