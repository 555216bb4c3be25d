-- Distinct active members per partner and day, as mergeable exact sets: the number of distinct
-- members over any range of days is uniqExactMerge(members) over that range's rows (a few hundred
-- rows per partner per year), instead of a distinct count over every member-day.
-- Sets are unions, so a row counted twice here can never count a member twice.
CREATE TABLE IF NOT EXISTS daily_active_members (
    client_id  UUID,
    day        Date,
    members    AggregateFunction(uniqExact, UUID)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (client_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_active_members_mv TO daily_active_members AS
SELECT client_id, local_date AS day, uniqExactState(member_id) AS members
FROM watch_events
GROUP BY client_id, day;

-- Events stored before this table existed.
INSERT INTO daily_active_members
SELECT client_id, local_date AS day, uniqExactState(member_id) AS members
FROM watch_events
GROUP BY client_id, day;
