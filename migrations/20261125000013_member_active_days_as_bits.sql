-- A member's active days as one bit set on the member's row instead of a row per member and day
-- (member_active_days): bit i of active_day_bits is the day active_days_since + i, in byte i / 8,
-- bit i % 8 counted from the least significant (get_bit's order). A landing reads the set with
-- the member's row lock, adds its events' days and writes the set back with the summary it updates
-- anyway, so it costs one row per member whatever the days' spread (a landing of a month's
-- backlog from 1,000 members wrote up to 30,000 day rows), and a member's days take a bit each
-- instead of a row (46 bytes for a year of every day).
ALTER TABLE members
    ADD COLUMN active_days_since date,
    ADD COLUMN active_day_bits bytea NOT NULL DEFAULT '\x';

WITH offsets AS (
    SELECT member_id, min(day) OVER w AS since, day - min(day) OVER w AS off
    FROM member_active_days
    WINDOW w AS (PARTITION BY member_id)
), bytes AS (
    SELECT member_id, since, off / 8 AS b, sum(1 << (off % 8))::int AS v
    FROM offsets GROUP BY member_id, since, off / 8
), sets AS (
    SELECT member_id, since, max(b) AS last_byte FROM bytes GROUP BY member_id, since
)
UPDATE members m SET active_days_since = s.since, active_day_bits = s.bits
FROM (
    SELECT f.member_id, f.since,
           decode(string_agg(lpad(to_hex(coalesce(x.v, 0)), 2, '0'), '' ORDER BY g), 'hex') AS bits
    FROM sets f
    CROSS JOIN LATERAL generate_series(0, f.last_byte) AS g
    LEFT JOIN bytes x ON x.member_id = f.member_id AND x.b = g
    GROUP BY f.member_id, f.since
) s
WHERE m.id = s.member_id;

DROP TABLE member_active_days;
