//! The one application error type. Every failure a caller can see is one of these variants; each has
//! an HTTP status, a stable machine-readable `code` and a message that is safe to show. Database,
//! Redis and ClickHouse errors are mapped here, once, and their text never reaches a caller.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// 400: the input is malformed or out of range.
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    /// 401: missing, expired or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing for this caller (also for other tenants' ids).
    #[error("{0}")]
    NotFound(String),
    /// 409: the current state forbids it (already redeemed, duplicate, not ready yet).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: it existed and is gone (expired download).
    #[error("{0}")]
    Gone(String),
    /// 413: request body too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: well-formed but impossible.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 429: slow down; `retry_after` in seconds.
    #[error("{message}")]
    RateLimited { retry_after: u64, message: String },
    /// 503: a dependency is unreachable.
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        retry_after: u64,
    },
    /// 503: a query ran past its time limit (Postgres `statement_timeout`, ClickHouse
    /// `max_execution_time`) and the database stopped it.
    #[error(
        "the request took too long in {dependency} and was stopped; retry later or ask for less"
    )]
    QueryTimeout {
        dependency: &'static str,
        retry_after: u64,
    },
    /// 500: a bug or an unexpected failure. The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let detail = FieldError::new(field, message);
        Self::Validation {
            message: format!("{}: {}", detail.field, detail.message),
            details: vec![detail],
        }
    }

    pub fn validation_many(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", details.len()),
        };
        Self::Validation { message, details }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Validation { .. } => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict { .. } => 409,
            Self::Gone(_) => 410,
            Self::PayloadTooLarge(_) => 413,
            Self::Unprocessable { .. } => 422,
            Self::RateLimited { .. } => 429,
            Self::Unavailable { .. } | Self::QueryTimeout { .. } => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict { code, .. } => code,
            Self::Gone(_) => "GONE",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::Unprocessable { code, .. } => code,
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable { .. } | Self::QueryTimeout { .. } => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The message a caller sees. Internal errors are reduced to a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "an unexpected error occurred".into(),
            other => other.to_string(),
        }
    }

    pub fn details(&self) -> &[FieldError] {
        match self {
            Self::Validation { details, .. } => details,
            _ => &[],
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::Unavailable { retry_after, .. }
            | Self::QueryTimeout { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The failure envelope of SPEC §4.
    pub fn envelope(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": self.public_message(),
        });
        if !self.details().is_empty() {
            error["details"] = serde_json::to_value(self.details()).unwrap_or_default();
        }
        serde_json::json!({ "success": false, "error": error })
    }
}

/// Errors shared by a cache loader (moka hands them out as `Arc<AppError>`): dependency outages
/// and query timeouts keep their meaning, anything else becomes an internal error.
impl From<std::sync::Arc<AppError>> for AppError {
    fn from(e: std::sync::Arc<AppError>) -> Self {
        match &*e {
            AppError::Unavailable {
                dependency,
                retry_after,
            } => AppError::Unavailable {
                dependency,
                retry_after: *retry_after,
            },
            AppError::QueryTimeout {
                dependency,
                retry_after,
            } => AppError::QueryTimeout {
                dependency,
                retry_after: *retry_after,
            },
            other => AppError::internal(other),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound("not found".into()),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %e, "postgres unavailable");
                Self::Unavailable {
                    dependency: "postgres",
                    retry_after: 5,
                }
            }
            sqlx::Error::Database(db) => {
                // SQLSTATE classes: 23505 unique, 23503 foreign key, 23514 check, 22xxx data.
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                match code.as_str() {
                    "23505" => {
                        Self::conflict("CONFLICT", "a record with these values already exists")
                    }
                    "23503" => Self::Unprocessable {
                        code: "INVALID_REFERENCE",
                        message: "a referenced record does not exist".into(),
                    },
                    "23514" | "23502" => Self::bad_request("a value is out of the allowed range"),
                    c if c.starts_with("22") => Self::bad_request("a value has the wrong format"),
                    // query_canceled: the API's statement_timeout (or an operator's cancel).
                    "57014" => {
                        tracing::warn!(error = %e, "postgres statement stopped by its time limit");
                        Self::QueryTimeout {
                            dependency: "postgres",
                            retry_after: 5,
                        }
                    }
                    c if c.starts_with("08") || c == "57P01" || c == "53300" => {
                        tracing::warn!(error = %e, "postgres unavailable");
                        Self::Unavailable {
                            dependency: "postgres",
                            retry_after: 5,
                        }
                    }
                    _ => Self::Internal(e.to_string()),
                }
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            tracing::warn!(error = %e, "redis unavailable");
            Self::Unavailable {
                dependency: "redis",
                retry_after: 5,
            }
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<clickhouse::error::Error> for AppError {
    fn from(e: clickhouse::error::Error) -> Self {
        match &e {
            clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                tracing::warn!(error = %e, "clickhouse unavailable");
                Self::Unavailable {
                    dependency: "clickhouse",
                    retry_after: 5,
                }
            }
            clickhouse::error::Error::BadResponse(text) if is_cluster_unavailable(text) => {
                tracing::warn!(error = %e, "clickhouse cluster: too few replicas or shards answer");
                Self::Unavailable {
                    dependency: "clickhouse",
                    retry_after: 5,
                }
            }
            clickhouse::error::Error::BadResponse(text) if is_clickhouse_timeout(text) => {
                tracing::warn!(error = %e, "clickhouse query stopped by its time limit");
                Self::QueryTimeout {
                    dependency: "clickhouse",
                    retry_after: 5,
                }
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// The error code of a ClickHouse error answer. Old servers write `Code: 159, e.displayText() =
/// …`, current ones `Code: 159. DB::Exception: …`.
pub(crate) fn clickhouse_code(text: &str) -> Option<&str> {
    text.trim_start().strip_prefix("Code: ").map(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("")
    })
}

/// A cluster's answer while part of it is away or catching up; retried like an unreachable
/// server: the replica quorum of the previous insert not reached yet (286), too few live
/// replicas for the quorum (285), a shard none of whose replicas answers (279), a replica that
/// lost ZooKeeper and turned read-only (242), ZooKeeper itself (225, 999), and an insert whose
/// quorum was not confirmed in time (319: retried, its rows are found by the resume check or
/// dropped as a duplicate block by the replicated table).
fn is_cluster_unavailable(text: &str) -> bool {
    matches!(
        clickhouse_code(text),
        Some("225" | "242" | "279" | "285" | "286" | "319" | "999")
    )
}

/// ClickHouse's answer to a query over `max_execution_time`: TIMEOUT_EXCEEDED (159), or TOO_SLOW
/// (160, when it estimates the query would overrun). Old servers write
/// `Code: 159, e.displayText() = …`, current ones `Code: 159. DB::Exception: …`.
fn is_clickhouse_timeout(text: &str) -> bool {
    matches!(clickhouse_code(text), Some("159" | "160"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_code_message_and_details() {
        let e = AppError::validation("quantity", "must be between 1 and 500");
        let v = e.envelope();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["details"][0]["field"], "quantity");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn clickhouse_time_limits_are_recognised_in_old_and_new_wording() {
        assert!(is_clickhouse_timeout(
            "Code: 159, e.displayText() = DB::Exception: Timeout exceeded: elapsed 1.0001 seconds, maximum: 1, e.what() = DB::Exception"
        ));
        assert!(is_clickhouse_timeout(
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 1.2 seconds, maximum: 1. (TIMEOUT_EXCEEDED)"
        ));
        assert!(is_clickhouse_timeout("Code: 160. DB::Exception: Estimated query execution time (12 seconds) is too long. (TOO_SLOW)"));
        assert!(!is_clickhouse_timeout("Code: 1590. DB::Exception: other"));
        assert!(!is_clickhouse_timeout(
            "Code: 60. DB::Exception: Table x doesn't exist"
        ));
        let e = AppError::from(clickhouse::error::Error::BadResponse(
            "Code: 159. DB::Exception: Timeout exceeded".into(),
        ));
        assert_eq!(e.status(), 503);
        assert_eq!(e.code(), "SERVICE_UNAVAILABLE");
        assert_eq!(e.retry_after(), Some(5));
        assert!(!e.envelope().to_string().contains("DB::Exception"));
    }

    #[test]
    fn a_cluster_short_of_replicas_is_unavailable_not_internal() {
        for text in [
            "Code: 286, e.displayText() = DB::Exception: Received from 127.0.0.1:9303. DB::Exception: Quorum for previous write has not been satisfied yet.",
            "Code: 285. DB::Exception: Number of alive replicas (1) is less than requested quorum (2).",
            "Code: 279, e.displayText() = DB::Exception: All connection tries failed.",
        ] {
            let e = AppError::from(clickhouse::error::Error::BadResponse(text.into()));
            assert_eq!(e.status(), 503, "{text}");
            assert!(!e.envelope().to_string().contains("DB::Exception"));
        }
        let e = AppError::from(clickhouse::error::Error::BadResponse(
            "Code: 60. DB::Exception: Table x doesn't exist".into(),
        ));
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn internal_errors_do_not_leak_their_text() {
        let e = AppError::internal("relation \"staff\" does not exist");
        assert_eq!(e.status(), 500);
        assert!(!e.envelope().to_string().contains("relation"));
    }
}
