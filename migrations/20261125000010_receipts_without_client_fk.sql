-- The receipt ledger is written once per watch event, and its foreign key to clients ran a
-- referential check (an index lookup and a row lock on the client) for every receipt: measured at
-- 6–14 µs a row, as much as the insert itself. Receipts only ever name the client of the API key
-- the events came in with, clients are never deleted by the product, and receipts are pruned
-- after 35 days, so the check guarded nothing the write path does not already guarantee.
ALTER TABLE watch_event_receipts DROP CONSTRAINT IF EXISTS watch_event_receipts_client_id_fkey;
