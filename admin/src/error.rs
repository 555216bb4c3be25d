//! Failures of a command: an [`AppError`] from the shared library, or a failure only the CLI has
//! (files, migrations). Rendered once by `main`: text on stderr, and with `--json` also
//! `{"error":{"code","message"[,"details"]}}` on stdout.

use portal_shared::AppError;
use serde_json::{json, Value};

#[derive(Debug)]
pub enum CliError {
    App(AppError),
    Failed { code: &'static str, message: String },
}

pub type CliResult<T> = Result<T, CliError>;

impl From<AppError> for CliError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl CliError {
    pub fn failed(code: &'static str, message: impl Into<String>) -> Self {
        Self::Failed {
            code,
            message: message.into(),
        }
    }

    /// The `{"error": …}` object printed on stdout with `--json`.
    pub fn to_json(&self) -> Value {
        match self {
            // The shared envelope already carries code, public message and validation details.
            Self::App(e) => json!({ "error": e.envelope()["error"].clone() }),
            Self::Failed { code, message } => {
                json!({ "error": { "code": code, "message": message } })
            }
        }
    }

    /// The text printed on stderr: the operator sees the full cause (also of internal errors), one
    /// line, or a line per invalid field when there are several.
    pub fn to_text(&self) -> String {
        match self {
            Self::App(e) => {
                let mut text = format!("error: {e}");
                if let AppError::Unavailable { dependency, .. } = e {
                    let var = match *dependency {
                        "postgres" => "DATABASE_URL",
                        "redis" => "REDIS_URL",
                        "clickhouse" => "CLICKHOUSE_URL",
                        _ => "the configuration",
                    };
                    text.push_str(&format!(" (is it running and is {var} right?)"));
                }
                if e.details().len() > 1 {
                    for d in e.details() {
                        text.push_str(&format!("\n  {}: {}", d.field, d.message));
                    }
                }
                text
            }
            Self::Failed { message, .. } => format!("error: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_shared::error::FieldError;

    #[test]
    fn validation_errors_keep_their_details() {
        let e = CliError::from(AppError::validation_many(vec![
            FieldError::new("slug", "bad"),
            FieldError::new("timezone", "bad"),
        ]));
        let v = e.to_json();
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(v["error"]["details"][1]["field"], "timezone");
        assert_eq!(e.to_text().lines().count(), 3);
        let one = CliError::from(AppError::validation("timezone", "bad"));
        assert_eq!(one.to_text(), "error: timezone: bad");
        assert!(one.to_json().get("success").is_none());
    }

    #[test]
    fn internal_text_reaches_stderr_only() {
        let e = CliError::from(AppError::internal("relation \"x\" does not exist"));
        assert!(e.to_text().contains("relation"));
        assert!(!e.to_json().to_string().contains("relation"));
    }
}
