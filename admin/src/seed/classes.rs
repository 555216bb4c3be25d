//! The demo class catalogue, imported (inserted or updated) from `demo/classes.csv` when present.

use std::path::Path;

use super::Report;
use crate::commands::{classes::import_file, Ctx};
use crate::error::CliResult;
use crate::output;

/// Returns the number of classes imported, or `None` when the file is missing.
pub async fn import(ctx: &Ctx, path: &Path, report: &mut Report) -> CliResult<Option<usize>> {
    if !path.is_file() {
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "the current directory".into());
        output::warn(&format!(
            "{} not found in {cwd}; skipping the class catalogue (run seed-demo from the repository root, or use `classes import`)",
            path.display()
        ));
        report.note(format!("classes: skipped ({} not found)", path.display()));
        return Ok(None);
    }
    let n = import_file(ctx, path).await?;
    report.note(format!("classes: {n} imported from {}", path.display()));
    Ok(Some(n))
}
