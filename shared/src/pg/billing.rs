//! The Postgres side of monthly billing: the billable members' names and emails, in report order.
//! Who is billable is ClickHouse's answer ([`crate::ch::billing`]).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::ids::{ClientId, MemberId};
use crate::domain::pagination::Page;
use crate::error::{AppError, AppResult};

/// A billable member's Postgres side.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: MemberId,
    pub name: String,
    pub email: String,
    pub registered_at: DateTime<Utc>,
}

/// One page of the members among `ids` in report order, and how many of `ids` are members.
/// Postgres sorts and slices: only the page's rows leave it.
///
/// The report's order, here and in [`people`]: name regardless of case (byte order of the
/// lower-cased name), then id.
pub async fn page(
    db: &PgPool,
    client_id: ClientId,
    ids: &[MemberId],
    page: Page,
) -> AppResult<(Vec<Person>, i64)> {
    // The total, and a person of the page (none when the page is past the end: the query still
    // answers one row, so the total always comes back).
    let rows = sqlx::query!(
        r#"WITH billable AS (
             SELECT id, name, email, registered_at FROM members WHERE client_id = $1 AND id = ANY($2)
         )
         SELECT t.total AS "total!", p.id AS "id?: MemberId", p.name AS "name?", p.email AS "email?",
                p.registered_at AS "registered_at?"
         FROM (SELECT count(*) AS total FROM billable) t
         LEFT JOIN LATERAL (
             SELECT * FROM billable ORDER BY lower(name) COLLATE "C", id LIMIT $3 OFFSET $4
         ) p ON true"#,
        client_id as ClientId,
        ids as &[MemberId],
        page.limit_i64(),
        page.offset(),
    )
    .fetch_all(db)
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    let people: Vec<Person> = rows
        .into_iter()
        .filter_map(|r| {
            Some(Person {
                id: r.id?,
                name: r.name?,
                email: r.email?,
                registered_at: r.registered_at?,
            })
        })
        .collect();
    Ok((people, total))
}

/// How many of `ids` are members of the client (members deleted since are not billed).
pub async fn count(db: &PgPool, client_id: ClientId, ids: &[MemberId]) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM members WHERE client_id = $1 AND id = ANY($2)"#,
        client_id as ClientId,
        ids as &[MemberId],
    )
    .fetch_one(db)
    .await?)
}

/// The members among `ids`, in report order, as a stream (for exports).
pub fn people<'a>(
    db: &'a PgPool,
    client_id: ClientId,
    ids: &'a [MemberId],
) -> impl futures::Stream<Item = AppResult<Person>> + Send + 'a {
    use futures::TryStreamExt;
    sqlx::query_as!(
        Person,
        r#"SELECT id AS "id: MemberId", name, email, registered_at FROM members
           WHERE client_id = $1 AND id = ANY($2) ORDER BY lower(name) COLLATE "C", id"#,
        client_id as ClientId,
        ids as &[MemberId],
    )
    .fetch(db)
    .map_err(AppError::from)
}
