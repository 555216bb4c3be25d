-- The member search index moves off `members` into a table of its own. Every landing of watch
-- events updates the summary of each member it counts (watch seconds, views, last activity), and
-- those columns are indexed for the member list's sorts, so the update cannot be HOT: Postgres
-- writes a new entry into every index of the table, including the trigram GIN index over name
-- and email, whose entry is some forty trigram postings. Measured on 101,000 members: updating
-- the summaries of 5,000 took 637–902 ms with the GIN index on `members` and 137 ms without it,
-- so a landing that touched 20,000 members spent seconds re-indexing names that had not changed.
-- `member_search` holds the same text, kept by triggers when a member is added or their name or
-- email changes, and the landing's updates never touch it.
CREATE TABLE member_search (
    member_id  uuid PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
    client_id  uuid NOT NULL,
    -- lower(name) || E'\n' || email: one index scan finds the members whose name or email holds
    -- the text; the search then checks each column of `members` on its own.
    text       text NOT NULL
);

INSERT INTO member_search (member_id, client_id, text)
SELECT id, client_id, lower(name) || E'\n' || email FROM members;

CREATE INDEX member_search_idx ON member_search
    USING gin (client_id, text gin_trgm_ops) WITH (fastupdate = off);

CREATE FUNCTION member_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_search (member_id, client_id, text)
    VALUES (NEW.id, NEW.client_id, lower(NEW.name) || E'\n' || NEW.email)
    ON CONFLICT (member_id) DO UPDATE SET client_id = EXCLUDED.client_id, text = EXCLUDED.text;
    RETURN NULL;
END
$$;

CREATE TRIGGER members_search_added AFTER INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION member_search_sync();
CREATE TRIGGER members_search_changed AFTER UPDATE OF name, email, client_id ON members
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.client_id IS DISTINCT FROM NEW.client_id)
    EXECUTE FUNCTION member_search_sync();

DROP INDEX members_search_idx;
