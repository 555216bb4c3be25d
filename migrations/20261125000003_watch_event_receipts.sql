-- Receipt ledger of watch events: the authority on "has this (client, eventId) been counted?".
-- A worker claims events by inserting their receipts (ON CONFLICT DO NOTHING: the first claim wins),
-- inserts the claimed events into ClickHouse, then marks them landed and updates the member
-- activity summaries in one transaction. A redelivered batch finds its own pending receipts
-- (same batch_id) and finishes them, checking ClickHouse first for rows that already landed.
-- Receipts are kept 35 days; the API refuses events that started more than 30 days ago, so the
-- deduplication window always covers every event it accepts.
CREATE TABLE watch_event_receipts (
    client_id    uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    event_id     uuid NOT NULL,
    batch_id     uuid NOT NULL,
    landed       boolean NOT NULL DEFAULT false,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, event_id)
);
CREATE INDEX watch_event_receipts_batch_idx ON watch_event_receipts (batch_id) WHERE NOT landed;
CREATE INDEX watch_event_receipts_received_idx ON watch_event_receipts (received_at);
