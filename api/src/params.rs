//! Request parameters several resources read the same way.

use portal_shared::error::AppError;
use uuid::Uuid;

/// An id in the path. A malformed one cannot name anything: it answers the same 404 as an unknown
/// one (`what` names the resource).
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw.trim()).map_err(|_| AppError::not_found(what))
}

/// A free-text `search`: at most 100 characters, trimmed, empty means none.
pub fn search(raw: Option<&str>) -> Result<Option<String>, AppError> {
    if raw.is_some_and(|s| s.chars().count() > 100) {
        return Err(AppError::validation(
            "search",
            "must be at most 100 characters",
        ));
    }
    Ok(raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}
