-- Vouchers without a prefix are just the 8 Crockford base32 characters.
ALTER TABLE vouchers DROP CONSTRAINT vouchers_code_check;
ALTER TABLE vouchers ADD CONSTRAINT vouchers_code_check CHECK (code = upper(code) AND length(code) BETWEEN 8 AND 40);

-- More of the member activity summary kept by the event pipeline: distinct days with a class view
-- (client's timezone) and the category with the most watch time.
ALTER TABLE members ADD COLUMN active_days integer NOT NULL DEFAULT 0 CHECK (active_days >= 0);
ALTER TABLE members ADD COLUMN favorite_category text;

-- Searching members by voucher code and listing a member's redemption.
CREATE INDEX vouchers_redeemed_by_idx ON vouchers (redeemed_by) WHERE redeemed_by IS NOT NULL;
