-- Watch events: one row per deduplicated class view. The worker writes each event exactly once
-- (deduplicated by (client_id, event_id) against the Postgres receipt ledger before insert).
-- local_date is the day of started_at in the partner's timezone at ingest time.
CREATE TABLE IF NOT EXISTS watch_events (
    client_id        UUID,
    event_id         UUID,
    member_id        UUID,
    class_id         String,
    category         String,
    started_at       DateTime,
    local_date       Date,
    watched_seconds  UInt32,
    received_at      DateTime
) ENGINE = MergeTree
PARTITION BY toYYYYMM(local_date)
ORDER BY (client_id, local_date, member_id, event_id);

-- The same rows ordered for one member's history (newest first reads).
CREATE TABLE IF NOT EXISTS member_watch_history (
    client_id        UUID,
    member_id        UUID,
    started_at       DateTime,
    event_id         UUID,
    class_id         String,
    category         String,
    local_date       Date,
    watched_seconds  UInt32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(local_date)
ORDER BY (client_id, member_id, started_at, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS member_watch_history_mv TO member_watch_history AS
SELECT client_id, member_id, started_at, event_id, class_id, category, local_date, watched_seconds
FROM watch_events;

-- Per client, day and class: views and watch seconds. Rows with the same key are summed by
-- background merges, so always query with sum(...) GROUP BY.
CREATE TABLE IF NOT EXISTS daily_class_stats (
    client_id        UUID,
    day              Date,
    category         String,
    class_id         String,
    views            UInt64,
    watched_seconds  UInt64
) ENGINE = SummingMergeTree((views, watched_seconds))
PARTITION BY toYYYYMM(day)
ORDER BY (client_id, day, category, class_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_class_stats_mv TO daily_class_stats AS
SELECT client_id, local_date AS day, category, class_id,
       toUInt64(count()) AS views, toUInt64(sum(watched_seconds)) AS watched_seconds
FROM watch_events
GROUP BY client_id, day, category, class_id;

-- Per client, day and member: views and watch seconds (active members, billing).
CREATE TABLE IF NOT EXISTS daily_member_stats (
    client_id        UUID,
    day              Date,
    member_id        UUID,
    views            UInt64,
    watched_seconds  UInt64
) ENGINE = SummingMergeTree((views, watched_seconds))
PARTITION BY toYYYYMM(day)
ORDER BY (client_id, day, member_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_member_stats_mv TO daily_member_stats AS
SELECT client_id, local_date AS day, member_id,
       toUInt64(count()) AS views, toUInt64(sum(watched_seconds)) AS watched_seconds
FROM watch_events
GROUP BY client_id, day, member_id;
