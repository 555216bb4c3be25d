//! `portal-admin classes import FILE.csv`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use portal_shared::pg::classes;
use serde_json::json;

use super::{announce_all_clients_changed, Ctx};
use crate::error::{CliError, CliResult};
use crate::output::Outcome;

/// Imports (inserts or updates) a catalogue CSV; returns the number of classes.
pub async fn import_file(ctx: &Ctx, path: &Path) -> CliResult<usize> {
    let file = File::open(path).map_err(|e| {
        CliError::failed(
            "FILE_UNREADABLE",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(classes::import_csv(&ctx.pool, BufReader::new(file)).await?)
}

/// Imports the file, then announces every client (titles and categories in analytics change).
pub async fn import(ctx: &Ctx, path: &Path) -> CliResult<Outcome> {
    let n = import_file(ctx, path).await?;
    let notice = announce_all_clients_changed(&ctx.config).await;
    Ok(Outcome::new(
        json!({ "imported": n }),
        format!("imported {n} classes from {}; {notice}", path.display()),
    ))
}
