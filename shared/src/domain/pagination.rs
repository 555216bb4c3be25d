//! The shared list parameters of SPEC §4: `page` ≥ 1 (default 1), `limit` 1..=max (default 20),
//! `sort` = `field` or `-field` from an allow-list. Out-of-range or unknown values answer 400.

use serde::Serialize;

use crate::error::{AppError, FieldError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub page: u32,
    pub limit: u32,
}

/// The largest `page` accepted (so an offset always fits the database's integers).
pub const MAX_PAGE: u32 = u32::MAX / 1024;

impl Page {
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.limit)
    }

    pub fn limit_i64(&self) -> i64 {
        i64::from(self.limit)
    }

    /// Parses raw query values. `max_limit` is 100 for most lists, 50 for products.
    pub fn parse(
        page: Option<&str>,
        limit: Option<&str>,
        max_limit: u32,
    ) -> Result<Self, AppError> {
        let mut errors = Vec::new();
        let page = match parse_int(page, "page", 1, MAX_PAGE) {
            Ok(v) => v.unwrap_or(1),
            Err(e) => {
                errors.push(e);
                1
            }
        };
        let limit = match parse_int(limit, "limit", 1, max_limit) {
            Ok(v) => v.unwrap_or(20.min(max_limit)),
            Err(e) => {
                errors.push(e);
                1
            }
        };
        if errors.is_empty() {
            Ok(Self { page, limit })
        } else {
            Err(AppError::validation_many(errors))
        }
    }

    pub fn pagination(&self, total: i64) -> Pagination {
        let total = total.max(0);
        let limit = i64::from(self.limit);
        Pagination {
            page: self.page,
            limit: self.limit,
            total,
            total_pages: (total + limit - 1) / limit,
        }
    }
}

fn parse_int(
    raw: Option<&str>,
    field: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let msg = || FieldError::new(field, format!("must be a whole number from {min} to {max}"));
    let v: i64 = raw.trim().parse().map_err(|_| msg())?;
    if v < i64::from(min) || v > i64::from(max) {
        return Err(msg());
    }
    Ok(Some(v as u32))
}

/// `pagination` object returned next to every list's items.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    pub total: i64,
    pub total_pages: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

/// A validated sort: one of the allowed fields, mapped to its SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub field: &'static str,
    pub column: &'static str,
    pub direction: Direction,
}

impl Sort {
    /// `allowed` maps API field names to SQL expressions (never user text); `default` applies
    /// when `raw` is absent.
    pub fn parse(
        raw: Option<&str>,
        allowed: &[(&'static str, &'static str)],
        default: (&'static str, Direction),
    ) -> Result<Self, AppError> {
        let (name, direction) = match raw.map(str::trim) {
            None | Some("") => (default.0, default.1),
            Some(s) => match s.strip_prefix('-') {
                Some(rest) => (rest, Direction::Desc),
                None => (s.strip_prefix('+').unwrap_or(s), Direction::Asc),
            },
        };
        match allowed.iter().find(|(f, _)| *f == name) {
            Some((field, column)) => Ok(Self {
                field,
                column,
                direction,
            }),
            None => Err(AppError::validation(
                "sort",
                format!(
                    "unknown sort field {name:?}; use one of {} (prefix with - for descending)",
                    allowed
                        .iter()
                        .map(|(f, _)| *f)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// `ORDER BY` clause body; NULLs always last so descending sorts show real values first.
    /// The one place SQL text is spliced: the column and the tiebreak are identifiers (they cannot
    /// be bound), and both come from a list's own allow-list, never from the request.
    pub fn order_by(&self, tiebreak: &str) -> String {
        format!(
            "{} {} NULLS LAST, {tiebreak}",
            self.column,
            self.direction.sql()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            Page::parse(None, None, 100).unwrap(),
            Page { page: 1, limit: 20 }
        );
        assert_eq!(
            Page::parse(Some("3"), Some("100"), 100).unwrap().offset(),
            200
        );
        for (p, l) in [
            (Some("0"), None),
            (Some("-1"), None),
            (Some("x"), None),
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("1.5")),
        ] {
            let e = Page::parse(p, l, 100).unwrap_err();
            assert_eq!(e.status(), 400, "{p:?} {l:?}");
        }
        assert!(Page::parse(None, Some("51"), 50).is_err());
    }

    #[test]
    fn total_pages_rounds_up() {
        let p = Page { page: 1, limit: 20 };
        assert_eq!(p.pagination(0).total_pages, 0);
        assert_eq!(p.pagination(20).total_pages, 1);
        assert_eq!(p.pagination(21).total_pages, 2);
    }

    #[test]
    fn sort_parses_direction_and_rejects_unknown_fields() {
        const ALLOWED: &[(&str, &str)] = &[("name", "lower(m.name)"), ("email", "m.email")];
        let s = Sort::parse(Some("-name"), ALLOWED, ("email", Direction::Asc)).unwrap();
        assert_eq!((s.column, s.direction), ("lower(m.name)", Direction::Desc));
        let d = Sort::parse(None, ALLOWED, ("email", Direction::Asc)).unwrap();
        assert_eq!(d.field, "email");
        let e = Sort::parse(Some("password_hash"), ALLOWED, ("email", Direction::Asc)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.details()[0].field, "sort");
    }
}
