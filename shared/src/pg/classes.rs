//! The class catalogue (shared by all partners), imported from CSV with the header
//! `id,title,category,instructor,durationMinutes`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};

use crate::domain::pagination::{Direction, Page, Sort};
use crate::error::{AppError, AppResult, FieldError};

/// A class of the catalogue.
#[derive(Debug, Clone, FromRow, Serialize, Deserialize, PartialEq, Eq, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "Class", example = json!({"id": "yoga-flow-1", "title": "Morning Flow", "category": "Yoga", "instructor": "Ana Ruiz", "durationMinutes": 30})))]
pub struct Class {
    pub id: String,
    pub title: String,
    pub category: String,
    pub instructor: String,
    pub duration_minutes: i32,
}

const HEADER: [&str; 5] = ["id", "title", "category", "instructor", "durationMinutes"];

/// Parses and validates a catalogue CSV. Errors name the line and the column.
pub fn parse_csv(input: impl Read) -> AppResult<Vec<Class>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| AppError::bad_request(format!("unreadable CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if header != HEADER {
        return Err(AppError::bad_request(format!(
            "CSV header must be exactly {}",
            HEADER.join(",")
        )));
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in rdr.deserialize::<Class>().enumerate() {
        let line = i + 2;
        let class = match rec {
            Ok(c) => c,
            Err(e) => {
                errors.push(FieldError::new(format!("line {line}"), e.to_string()));
                continue;
            }
        };
        let id_ok = !class.id.is_empty()
            && class.id.len() <= 128
            && class
                .id
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && class
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !id_ok {
            errors.push(FieldError::new(
                format!("line {line}: id"),
                "must be 1-128 of A-Z a-z 0-9 _ . -",
            ));
        }
        if class.title.is_empty() || class.title.chars().count() > 300 {
            errors.push(FieldError::new(
                format!("line {line}: title"),
                "must be 1-300 characters",
            ));
        }
        if class.category.is_empty() || class.category.chars().count() > 100 {
            errors.push(FieldError::new(
                format!("line {line}: category"),
                "must be 1-100 characters",
            ));
        }
        if !(1..=1440).contains(&class.duration_minutes) {
            errors.push(FieldError::new(
                format!("line {line}: durationMinutes"),
                "must be 1-1440",
            ));
        }
        if !seen.insert(class.id.clone()) {
            errors.push(FieldError::new(
                format!("line {line}: id"),
                "appears twice in the file",
            ));
        }
        out.push(class);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::validation_many(errors))
    }
}

/// Inserts or updates the given classes in one statement per 5,000 rows.
pub async fn upsert(pool: &PgPool, classes: &[Class]) -> AppResult<usize> {
    let mut tx = pool.begin().await?;
    for chunk in classes.chunks(5000) {
        let ids: Vec<&str> = chunk.iter().map(|c| c.id.as_str()).collect();
        let titles: Vec<&str> = chunk.iter().map(|c| c.title.as_str()).collect();
        let cats: Vec<&str> = chunk.iter().map(|c| c.category.as_str()).collect();
        let instr: Vec<&str> = chunk.iter().map(|c| c.instructor.as_str()).collect();
        let dur: Vec<i32> = chunk.iter().map(|c| c.duration_minutes).collect();
        sqlx::query!(
            "INSERT INTO classes (id, title, category, instructor, duration_minutes)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
             ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, category = EXCLUDED.category,
                 instructor = EXCLUDED.instructor, duration_minutes = EXCLUDED.duration_minutes,
                 updated_at = now()",
            &ids[..] as &[&str],
            &titles[..] as &[&str],
            &cats[..] as &[&str],
            &instr[..] as &[&str],
            &dur,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(classes.len())
}

pub async fn import_csv(pool: &PgPool, input: impl Read) -> AppResult<usize> {
    let classes = parse_csv(input)?;
    upsert(pool, &classes).await
}

/// Sort fields of `GET /classes`.
pub const SORTS: &[(&str, &str)] = &[
    ("title", "lower(title)"),
    ("category", "lower(category)"),
    ("durationMinutes", "duration_minutes"),
];

pub fn parse_sort(raw: Option<&str>) -> AppResult<Sort> {
    Sort::parse(raw, SORTS, ("category", Direction::Asc))
}

pub async fn list(
    pool: &PgPool,
    category: Option<&str>,
    sort: Sort,
    page: Page,
) -> AppResult<(Vec<Class>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM classes
           WHERE ($1::text IS NULL OR lower(category) = lower($1))"#,
        category,
    )
    .fetch_one(pool)
    .await?;
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, title, category, instructor, duration_minutes FROM classes",
    );
    if let Some(category) = category {
        q.push(" WHERE lower(category) = lower(")
            .push_bind(category)
            .push(")");
    }
    // The ORDER BY expression comes from the SORTS allow-list, never from the request.
    q.push(" ORDER BY ").push(sort.order_by("lower(title), id"));
    q.push(" LIMIT ").push_bind(page.limit_i64());
    q.push(" OFFSET ").push_bind(page.offset());
    let rows = q.build_query_as::<Class>().fetch_all(pool).await?;
    Ok((rows, total))
}

pub async fn get(pool: &PgPool, id: &str) -> AppResult<Class> {
    // Postgres text cannot hold U+0000, so such an id names no class.
    if id.contains('\0') {
        return Err(AppError::not_found("class"));
    }
    sqlx::query_as!(
        Class,
        "SELECT id, title, category, instructor, duration_minutes FROM classes WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("class"))
}

/// The class catalogue as a map, reloaded at most every 30 s (classes change rarely).
#[derive(Clone)]
pub struct Catalogue {
    cache: Cache<(), Arc<HashMap<String, ClassInfo>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub title: String,
    pub category: String,
    pub duration_minutes: i32,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl Catalogue {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder().max_capacity(1).time_to_live(ttl).build(),
        }
    }

    pub async fn get(&self, pool: &PgPool) -> AppResult<Arc<HashMap<String, ClassInfo>>> {
        self.cache
            .try_get_with((), async {
                let rows =
                    sqlx::query!("SELECT id, title, category, duration_minutes FROM classes")
                        .fetch_all(pool)
                        .await?;
                Ok::<_, AppError>(Arc::new(
                    rows.into_iter()
                        .map(|r| {
                            (
                                r.id,
                                ClassInfo {
                                    title: r.title,
                                    category: r.category,
                                    duration_minutes: r.duration_minutes,
                                },
                            )
                        })
                        .collect(),
                ))
            })
            .await
            .map_err(AppError::from)
    }

    pub fn invalidate(&self) {
        self.cache.invalidate_all();
    }
}

/// Every class's id and category, in id order.
pub async fn categories(pool: &PgPool) -> AppResult<Vec<(String, String)>> {
    Ok(sqlx::query!("SELECT id, category FROM classes ORDER BY id")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.id, r.category))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_the_right_header_parses() {
        let csv = "id,title,category,instructor,durationMinutes\nyoga-flow-1,Morning Flow,Yoga,Ana,30\n\"hiit-2\",\"Burn, baby\",HIIT,Bo,20\n";
        let c = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].title, "Burn, baby");
    }

    #[test]
    fn bad_rows_are_reported_by_line() {
        let csv = "id,title,category,instructor,durationMinutes\nok-1,T,C,I,30\n bad id ,T,C,I,0\n";
        let e = parse_csv(csv.as_bytes()).unwrap_err();
        let fields: Vec<_> = e.details().iter().map(|d| d.field.clone()).collect();
        assert!(fields.iter().any(|f| f == "line 3: id"), "{fields:?}");
        assert!(
            fields.iter().any(|f| f == "line 3: durationMinutes"),
            "{fields:?}"
        );
        assert!(parse_csv("a,b\n1,2\n".as_bytes()).is_err());
    }
}
