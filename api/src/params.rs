//! Request parameters several resources read the same way.

use portal_shared::error::AppError;
use uuid::Uuid;

/// An id in the path. A malformed one cannot name anything: it answers the same 404 as an unknown
/// one (`what` names the resource).
pub fn path_id<T: From<Uuid>>(raw: &str, what: &str) -> Result<T, AppError> {
    Uuid::parse_str(raw.trim())
        .map(T::from)
        .map_err(|_| AppError::not_found(what))
}

/// A free-text query value: at most `max` characters (when given) and no U+0000 (Postgres cannot
/// hold it); then trimmed, and empty means none.
pub fn text(
    raw: Option<&str>,
    field: &str,
    max: Option<usize>,
) -> Result<Option<String>, AppError> {
    if let (Some(s), Some(max)) = (raw, max) {
        if s.chars().count() > max {
            return Err(AppError::validation(
                field,
                format!("must be at most {max} characters"),
            ));
        }
    }
    if raw.is_some_and(|s| s.contains('\0')) {
        return Err(AppError::validation(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// A free-text `search`: at most 100 characters.
pub fn search(raw: Option<&str>) -> Result<Option<String>, AppError> {
    text(raw, "search", Some(100))
}
