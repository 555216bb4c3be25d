//! Reads over ClickHouse for the dashboard, analytics, the funnel and member history (billing's
//! reads are in [`crate::ch::billing`]). Days are the client's timezone days (`local_date`, fixed at ingest).
//! Units (SPEC §4): a class view is one deduplicated event; minutes are round-half-up of the
//! summed seconds ÷ 60, applied once.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::ch::ClickHouse;
use crate::domain::ids::{ClientId, MemberId};
use crate::domain::minutes;
use crate::error::{AppError, AppResult};
use crate::pg::classes::ClassInfo;

/// An inclusive range of local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DayRange {
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The last `n` days including `today`.
    pub fn last(n: u64, today: NaiveDate) -> Self {
        Self {
            start: today.checked_sub_days(Days::new(n - 1)).unwrap_or(today),
            end: today,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> {
        let start = self.start;
        (0..self.days()).filter_map(move |i| start.checked_add_days(Days::new(i as u64)))
    }
}

pub const MAX_RANGE_DAYS: i64 = 366;

/// `period` (week | month | quarter: the last 7 / 30 / 90 days including today) or
/// `startDate` + `endDate` (inclusive, ≤ 366 days, start ≤ end). Default `month`.
pub fn parse_range(
    period: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    today: NaiveDate,
) -> AppResult<DayRange> {
    Ok(RangeSpec::parse(period, start, end)?.resolve(today))
}

/// A range as asked for, checked but not yet placed on the calendar: every rule of
/// [`parse_range`] holds without knowing today, so a request's range can be checked (and used as a
/// cache key) before the client's timezone is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeSpec {
    /// The last `n` days including today (`period`).
    Last(u64),
    /// These days (`startDate` + `endDate`).
    Days(DayRange),
}

impl RangeSpec {
    /// The rules of [`parse_range`].
    pub fn parse(period: Option<&str>, start: Option<&str>, end: Option<&str>) -> AppResult<Self> {
        let (period, start, end) = (nonempty(period), nonempty(start), nonempty(end));
        fn nonempty(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        match (period, start, end) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(AppError::validation(
                "period",
                "send either period or startDate and endDate, not both",
            )),
            (p, None, None) => match p.unwrap_or("month") {
                "week" => Ok(Self::Last(7)),
                "month" => Ok(Self::Last(30)),
                "quarter" => Ok(Self::Last(90)),
                _ => Err(AppError::validation(
                    "period",
                    "must be week, month or quarter",
                )),
            },
            (None, Some(_), None) => Err(AppError::validation(
                "endDate",
                "is required with startDate",
            )),
            (None, None, Some(_)) => Err(AppError::validation(
                "startDate",
                "is required with endDate",
            )),
            (None, Some(s), Some(e)) => {
                let parse = |v: &str, f: &str| {
                    NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map_err(|_| AppError::validation(f, "must be a date as YYYY-MM-DD"))
                };
                let (s, e) = (parse(s, "startDate")?, parse(e, "endDate")?);
                if s > e {
                    return Err(AppError::validation(
                        "startDate",
                        "must not be after endDate",
                    ));
                }
                let r = DayRange { start: s, end: e };
                if r.days() > MAX_RANGE_DAYS {
                    return Err(AppError::validation(
                        "endDate",
                        format!("the range may span at most {MAX_RANGE_DAYS} days"),
                    ));
                }
                Ok(Self::Days(r))
            }
        }
    }

    /// The days meant, `today` being the client's current day.
    pub fn resolve(self, today: NaiveDate) -> DayRange {
        match self {
            Self::Last(n) => DayRange::last(n, today),
            Self::Days(r) => r,
        }
    }
}

fn d(s: NaiveDate) -> String {
    s.format("%Y-%m-%d").to_string()
}

/// `sql`, whose first three parameters are `client_id = ? AND day >= toDate(?) AND
/// day <= toDate(?)`, bound to the client and the range's first and last day.
fn over_range(
    ch: &ClickHouse,
    sql: &str,
    client_id: ClientId,
    r: DayRange,
) -> clickhouse::query::Query {
    ch.client
        .query(sql)
        .bind(client_id.to_string())
        .bind(d(r.start))
        .bind(d(r.end))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub watched_seconds: u64,
    pub views: u64,
    pub active_members: u64,
}

pub async fn totals(ch: &ClickHouse, client_id: ClientId, r: DayRange) -> AppResult<Totals> {
    let sums = over_range(
        ch,
        "SELECT sum(watched_seconds), sum(views) FROM daily_class_stats
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)",
        client_id,
        r,
    )
    .fetch_one::<(u64, u64)>();
    let sums = async { Ok::<_, AppError>(sums.await?) };
    let active = active_members(ch, client_id, r);
    let ((s, v), m) = tokio::try_join!(sums, active)?;
    Ok(Totals {
        watched_seconds: s,
        views: v,
        active_members: m,
    })
}

/// One day of a range (the partner's timezone): watch time and class views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "DayPoint"))]
pub struct DayPoint {
    pub date: String,
    pub watch_time_minutes: i64,
    pub classes_watched: u64,
}

/// Every day of the range, zeros included.
pub async fn by_day(ch: &ClickHouse, client_id: ClientId, r: DayRange) -> AppResult<Vec<DayPoint>> {
    let rows: Vec<(String, u64, u64)> = over_range(
        ch,
        "SELECT toString(day), sum(watched_seconds), sum(views) FROM daily_class_stats
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)
             GROUP BY day ORDER BY day",
        client_id,
        r,
    )
    .fetch_all()
    .await?;
    let found: HashMap<String, (u64, u64)> =
        rows.into_iter().map(|(day, s, v)| (day, (s, v))).collect();
    Ok(r.iter()
        .map(|day| {
            let key = d(day);
            let (s, v) = found.get(&key).copied().unwrap_or((0, 0));
            DayPoint {
                date: key,
                watch_time_minutes: minutes(s as i64),
                classes_watched: v,
            }
        })
        .collect())
}

/// A class category's watch time and views in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "CategoryStat"))]
pub struct CategoryStat {
    pub category: String,
    pub watch_time_minutes: i64,
    pub views: u64,
}

pub async fn top_categories(
    ch: &ClickHouse,
    client_id: ClientId,
    r: DayRange,
) -> AppResult<Vec<CategoryStat>> {
    let rows: Vec<(String, u64, u64)> = over_range(
        ch,
        "SELECT category, sum(watched_seconds) AS s, sum(views) AS v FROM daily_class_stats
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)
             GROUP BY category ORDER BY s DESC, v DESC, category LIMIT 10",
        client_id,
        r,
    )
    .fetch_all()
    .await?;
    Ok(rows
        .into_iter()
        .map(|(category, s, v)| CategoryStat {
            category,
            watch_time_minutes: minutes(s as i64),
            views: v,
        })
        .collect())
}

/// A class's views and watch time in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "ClassStat"))]
pub struct ClassStat {
    pub class_id: String,
    pub title: String,
    pub category: String,
    pub views: u64,
    pub watch_time_minutes: i64,
}

pub async fn top_classes(
    ch: &ClickHouse,
    client_id: ClientId,
    r: DayRange,
    catalogue: &HashMap<String, ClassInfo>,
) -> AppResult<Vec<ClassStat>> {
    let rows: Vec<(String, String, u64, u64)> = over_range(
        ch,
            "SELECT class_id, any(category), sum(views) AS v, sum(watched_seconds) AS s FROM daily_class_stats
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)
             GROUP BY class_id ORDER BY v DESC, s DESC, class_id LIMIT 10",
        client_id,
        r,
    )
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|(class_id, category, v, s)| ClassStat {
            title: catalogue
                .get(&class_id)
                .map(|c| c.title.clone())
                .unwrap_or_else(|| class_id.clone()),
            class_id,
            category,
            views: v,
            watch_time_minutes: minutes(s as i64),
        })
        .collect())
}

/// Watch seconds of the client over a range (dashboard trends).
pub async fn watched_seconds(ch: &ClickHouse, client_id: ClientId, r: DayRange) -> AppResult<u64> {
    Ok(over_range(
        ch,
        "SELECT sum(watched_seconds) FROM daily_class_stats
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)",
        client_id,
        r,
    )
    .fetch_one()
    .await?)
}

/// Distinct members who watched anything on a day of the range.
pub async fn active_members(ch: &ClickHouse, client_id: ClientId, r: DayRange) -> AppResult<u64> {
    Ok(over_range(
        ch,
        "SELECT uniqExactMerge(members) FROM daily_active_members
             WHERE client_id = ? AND day >= toDate(?) AND day <= toDate(?)",
        client_id,
        r,
    )
    .fetch_one()
    .await?)
}

/// The onboarding funnel of a range of the client's days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Funnel {
    /// Vouchers created on a day of the range (whatever became of them since).
    pub vouchers_issued: i64,
    /// Members who registered on a day of the range.
    pub registered: i64,
    /// Distinct members with at least one watch event on a day of the range (analytics'
    /// `activeMembers` of the same range).
    pub active: u64,
    /// Distinct members billable (SPEC "Billing": watched in the month) for at least one of the
    /// calendar months the range touches; for a range inside one month, that month's billing
    /// `activeMemberCount`.
    pub billable: u64,
}

/// The calendar months a range touches, as one range: the first day of its first month to the
/// last day of its last month.
pub fn whole_months(r: DayRange) -> DayRange {
    use chrono::Datelike;
    let start = r.start.with_day(1).unwrap_or(r.start);
    let next = if r.end.month() == 12 {
        NaiveDate::from_ymd_opt(r.end.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(r.end.year(), r.end.month() + 1, 1)
    };
    let end = next.and_then(|n| n.pred_opt()).unwrap_or(r.end);
    DayRange { start, end }
}

/// [`Funnel`] of a range: the Postgres counts (vouchers and registrations, by the client's
/// timezone days) and the two ClickHouse counts run at the same time.
pub async fn funnel(
    db: &sqlx::PgPool,
    ch: &ClickHouse,
    client_id: ClientId,
    r: DayRange,
) -> AppResult<Funnel> {
    let counts = crate::pg::clients::issued_and_registered(db, client_id, r.start, r.end);
    let ((vouchers_issued, registered), active, billable) = tokio::try_join!(
        counts,
        active_members(ch, client_id, r),
        active_members(ch, client_id, whole_months(r)),
    )?;
    Ok(Funnel {
        vouchers_issued,
        registered,
        active,
        billable,
    })
}

/// `"+12%"`, `"-5%"`, `"0%"`; `None` when the earlier period is zero.
pub fn trend(current: f64, previous: f64) -> Option<String> {
    if previous <= 0.0 {
        return None;
    }
    let pct = ((current - previous) / previous * 100.0).round() as i64;
    Some(match pct {
        0 => "0%".into(),
        p if p > 0 => format!("+{p}%"),
        p => format!("{p}%"),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    pub class_id: String,
    pub category: String,
    pub started_at: DateTime<Utc>,
    pub watched_seconds: u32,
}

/// A member's class views, newest first.
pub async fn member_history(
    ch: &ClickHouse,
    client_id: ClientId,
    member_id: MemberId,
    limit: i64,
    offset: i64,
) -> AppResult<(Vec<HistoryRow>, i64)> {
    let total = ch
        .client
        .query("SELECT count() FROM member_watch_history WHERE client_id = ? AND member_id = ?")
        .bind(client_id.to_string())
        .bind(member_id.to_string())
        .fetch_one::<u64>();
    let rows = ch
        .client
        .query(
            "SELECT class_id, category, toUInt32(started_at), watched_seconds FROM member_watch_history
             WHERE client_id = ? AND member_id = ?
             ORDER BY started_at DESC, event_id DESC LIMIT ? OFFSET ?",
        )
        .bind(client_id.to_string())
        .bind(member_id.to_string())
        .bind(limit.max(0) as u64)
        .bind(offset.max(0) as u64)
        .fetch_all::<(String, String, u32, u32)>();
    let (total, rows) = tokio::try_join!(total, rows)?;
    Ok((
        rows.into_iter()
            .map(|(class_id, category, ts, watched_seconds)| HistoryRow {
                class_id,
                category,
                started_at: DateTime::from_timestamp(i64::from(ts), 0).unwrap_or_default(),
                watched_seconds,
            })
            .collect(),
        total as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_months_widen_a_range_to_the_months_it_touches() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let r = |a: &str, b: &str| DayRange {
            start: day(a),
            end: day(b),
        };
        assert_eq!(
            whole_months(r("2026-11-05", "2026-11-25")),
            r("2026-11-01", "2026-11-30")
        );
        assert_eq!(
            whole_months(r("2026-10-27", "2026-11-25")),
            r("2026-10-01", "2026-11-30")
        );
        assert_eq!(
            whole_months(r("2025-12-31", "2026-02-01")),
            r("2025-12-01", "2026-02-28")
        );
        assert_eq!(
            whole_months(r("2026-12-01", "2026-12-31")),
            r("2026-12-01", "2026-12-31")
        );
    }

    #[test]
    fn ranges() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let r = parse_range(None, None, None, today).unwrap();
        assert_eq!((r.start.to_string(), r.days()), ("2026-10-27".into(), 30));
        assert_eq!(
            parse_range(Some("week"), None, None, today).unwrap().days(),
            7
        );
        assert_eq!(
            parse_range(Some("quarter"), None, None, today)
                .unwrap()
                .days(),
            90
        );
        let c = parse_range(None, Some("2026-01-01"), Some("2026-12-31"), today).unwrap();
        assert_eq!(c.days(), 365);
        for (p, s, e) in [
            (Some("year"), None, None),
            (Some("week"), Some("2026-01-01"), Some("2026-01-02")),
            (None, Some("2026-01-02"), Some("2026-01-01")),
            (None, Some("2025-01-01"), Some("2026-01-03")),
            (None, Some("2026-01-01"), None),
            (None, Some("01/02/2026"), Some("2026-01-03")),
        ] {
            assert!(parse_range(p, s, e, today).is_err(), "{p:?} {s:?} {e:?}");
        }
    }

    #[test]
    fn trends_are_signed_whole_percentages() {
        assert_eq!(trend(112.0, 100.0).as_deref(), Some("+12%"));
        assert_eq!(trend(95.0, 100.0).as_deref(), Some("-5%"));
        assert_eq!(trend(100.0, 100.0).as_deref(), Some("0%"));
        assert_eq!(trend(5.0, 0.0), None);
    }
}
