-- The state behind members.active_days and members.favorite_category, so that landing a flush
-- costs in proportion to the events it counts, not to the members' history. Until now every
-- landing recomputed both fields of each touched member from their whole history in ClickHouse.
--
-- member_active_days: the distinct days (in the client's timezone) on which the member watched a
--   class. A landing inserts its events' days ON CONFLICT DO NOTHING and adds the rows it
--   inserted to members.active_days; a day seen again adds nothing.
-- member_category_seconds: the member's watch seconds per category. A landing adds its events'
--   seconds, and favorite_category is the category with the most (ties: the first in byte order),
--   read from the member's rows: a handful, bounded by the catalogue's categories.
-- Both are written only by the transaction whose commit lands the events (exactly once, like the
-- summaries), under the member's row lock (pg::receipts::lock_members).
--
-- Keyed by member first: member ids are unique across clients, so the cascade from members and
-- every per-member read use the primary key. client_id is carried, and filtered on, like in every
-- tenant-owned table.
CREATE TABLE member_active_days (
    member_id  uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    day        date NOT NULL,
    client_id  uuid NOT NULL,
    PRIMARY KEY (member_id, day)
);

CREATE TABLE member_category_seconds (
    member_id  uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    category   text NOT NULL,
    client_id  uuid NOT NULL,
    seconds    bigint NOT NULL CHECK (seconds >= 0),
    PRIMARY KEY (member_id, category)
);

-- Members counted before these tables existed have their two fields but no rows here. They are
-- marked untracked, and their next landing rebuilds their rows once from ClickHouse, under the
-- member's row lock (pipeline::land_pending, step 3). A member who never watched has nothing to
-- rebuild; new members start tracked.
ALTER TABLE members ADD COLUMN profile_tracked boolean NOT NULL DEFAULT true;
UPDATE members SET profile_tracked = false WHERE class_views > 0;
