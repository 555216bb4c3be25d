-- Vouchers with `status` as the API shows it: the table stores active, redeemed or revoked, and
-- an active voucher whose `expires_at` has passed reads as `expired`. One definition for every
-- read (lists, filters, sorts, exports, code checks) instead of a CASE repeated in each query.
-- A plain view: Postgres inlines it into each query, so plans and indexes are those of `vouchers`.
CREATE VIEW vouchers_with_status AS
SELECT id, client_id, code, batch_id,
       CASE WHEN status = 'active' AND expires_at <= now() THEN 'expired' ELSE status END AS status,
       expires_at, created_at, created_by, redeemed_by, redeemed_at, revoked_at, revoked_by
FROM vouchers;
