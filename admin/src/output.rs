//! Everything the CLI prints. Results go to stdout (one JSON object with `--json`, else text);
//! warnings and errors go to stderr, so `--json` output stays machine-readable.

use std::io::Write;

use serde_json::Value;

/// What a successful command reports: the JSON object for `--json` and the text for people.
#[derive(Debug)]
pub struct Outcome {
    pub json: Value,
    pub text: String,
}

impl Outcome {
    pub fn new(json: Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`portal-admin … | head` must not panic).
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

pub fn stderr(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

pub fn warn(text: &str) {
    stderr(&format!("warning: {text}"));
}

pub fn json(value: &Value) {
    stdout(&value.to_string());
}
