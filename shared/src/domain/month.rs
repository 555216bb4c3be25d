//! A calendar month of billing (the partner's timezone days), as asked for in a query.

use chrono::{Datelike, NaiveDate};

use crate::error::{AppError, AppResult, FieldError};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn first_day(&self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default()
    }

    pub fn last_day(&self) -> NaiveDate {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.pred_opt())
            .unwrap_or_default()
    }

    /// `month`/`year` query values; default is the current month in the partner's timezone;
    /// a month after it answers 400.
    pub fn parse(month: Option<&str>, year: Option<&str>, today: NaiveDate) -> AppResult<Self> {
        MonthQuery::parse(month, year)?.resolve(today)
    }
}

/// `month`/`year` as asked for, each checked on its own (what needs no clock); [`resolve`] fills
/// in the defaults and refuses a future month. Lets a request's month be checked (and used as a
/// cache key) before the client's timezone is read.
///
/// [`resolve`]: MonthQuery::resolve
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MonthQuery {
    pub month: Option<u32>,
    pub year: Option<i32>,
}

impl MonthQuery {
    /// Both values' problems at once; empty values are not given.
    pub fn parse(month: Option<&str>, year: Option<&str>) -> AppResult<Self> {
        let mut errors = Vec::new();
        let month = match month.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(m) => match m.parse::<u32>() {
                Ok(v) if (1..=12).contains(&v) => Some(v),
                _ => {
                    errors.push(FieldError::new(
                        "month",
                        "must be a whole number from 1 to 12",
                    ));
                    None
                }
            },
        };
        let year = match year.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(y) => match y.parse::<i32>() {
                Ok(v) if (2000..=2100).contains(&v) => Some(v),
                _ => {
                    errors.push(FieldError::new("year", "must be a year from 2000 to 2100"));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(AppError::validation_many(errors));
        }
        Ok(Self { month, year })
    }

    /// The month meant, `today` being the client's current day (the default for what is not
    /// given); a month after today's answers 400.
    pub fn resolve(self, today: NaiveDate) -> AppResult<Month> {
        let m = Month {
            year: self.year.unwrap_or(today.year()),
            month: self.month.unwrap_or(today.month()),
        };
        if m.first_day() > today {
            return Err(AppError::validation("month", "must not be in the future"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(
            Month::parse(None, None, today).unwrap(),
            Month {
                year: 2026,
                month: 11
            }
        );
        let feb = Month::parse(Some("2"), Some("2024"), today).unwrap();
        assert_eq!(feb.last_day().to_string(), "2024-02-29");
        assert_eq!(
            Month {
                year: 2026,
                month: 12
            }
            .last_day()
            .to_string(),
            "2026-12-31"
        );
        assert!(Month::parse(Some("12"), Some("2026"), today).is_err());
        assert!(Month::parse(Some("13"), None, today).is_err());
        assert!(Month::parse(Some("x"), None, today).is_err());
        assert!(Month::parse(None, Some("1999"), today).is_err());
    }
}
