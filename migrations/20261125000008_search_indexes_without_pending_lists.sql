-- Search indexes write every entry into the index at once instead of into a GIN pending list.
-- A pending list is merged only by VACUUM (or when it outgrows gin_pending_list_limit), and every
-- search reads it whole: with autovacuum off or behind after a bulk load, a member search of a
-- 100,000-member partner took 22 ms of execution instead of 3 ms. Inserts into these tables
-- (registrations, voucher batches, products) are rare next to searches.
ALTER INDEX vouchers_code_trgm_idx SET (fastupdate = off);
ALTER INDEX members_name_trgm_idx SET (fastupdate = off);
ALTER INDEX members_email_trgm_idx SET (fastupdate = off);
ALTER INDEX products_name_trgm_idx SET (fastupdate = off);
ALTER INDEX products_description_trgm_idx SET (fastupdate = off);
-- Entries already waiting in the lists move into the indexes now.
SELECT gin_clean_pending_list('vouchers_code_trgm_idx'),
       gin_clean_pending_list('members_name_trgm_idx'),
       gin_clean_pending_list('members_email_trgm_idx'),
       gin_clean_pending_list('products_name_trgm_idx'),
       gin_clean_pending_list('products_description_trgm_idx');
