//! The demo credentials file (JSON, mode 0600), read at the start of `seed-demo` and rewritten when
//! its content changes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Report;
use crate::error::{CliError, CliResult};
use crate::output;

/// The saved credentials, or `None` if the file is absent or unreadable (with a warning).
pub fn load(path: &Path) -> CliResult<Option<Value>> {
    temp_path(path)?;
    if path.is_dir() {
        return Err(CliError::failed(
            "VALIDATION_ERROR",
            format!("--credentials-file {} is a directory", path.display()),
        ));
    }
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            output::warn(&format!(
                "cannot read {}: {e}; it will be replaced",
                path.display()
            ));
            return Ok(None);
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        _ => {
            output::warn(&format!(
                "{} is not a JSON object; it will be replaced",
                path.display()
            ));
            Ok(None)
        }
    }
}

/// Writes `summary` to `path` unless it already holds exactly that (atomically, mode 0600).
pub fn save(
    path: &Path,
    summary: &Value,
    saved: Option<&Value>,
    report: &mut Report,
) -> CliResult<()> {
    if saved == Some(summary) {
        report.note(format!("credentials: {} is up to date", path.display()));
        return Ok(());
    }
    write_private(path, summary).map_err(|e| {
        CliError::failed(
            "FILE_UNWRITABLE",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    report.note(format!("credentials: written to {}", path.display()));
    Ok(())
}

fn temp_path(path: &Path) -> CliResult<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        CliError::failed(
            "VALIDATION_ERROR",
            format!(
                "--credentials-file must name a file (got {})",
                path.display()
            ),
        )
    })?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp))
}

fn write_private(path: &Path, value: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_path(path).map_err(|_| std::io::Error::other("not a file name"))?;
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_private_and_round_trip() {
        let dir = std::env::temp_dir().join(format!("portal-admin-test-{}", std::process::id()));
        let path = dir.join("nested/creds.json");
        let value = serde_json::json!({"apiKey": "ppk_x", "clientId": "c"});
        let mut report = Report::default();
        save(&path, &value, None, &mut report).unwrap();
        assert_eq!(load(&path).unwrap(), Some(value.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, "not json").unwrap();
        assert_eq!(load(&path).unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
