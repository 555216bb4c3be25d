//! `portal-admin`: onboarding and operations for the Partner Portal (SPEC §6).
//!
//! stdout carries only the result (exactly one JSON object with `--json`); everything else —
//! warnings, errors — goes to stderr. Exit codes: 0 ok, 1 the command failed, 2 bad usage or
//! configuration. No tracing subscriber is installed (the shared one writes to stdout).

mod cli;
mod commands;
mod error;
mod output;
mod seed;

use std::process::ExitCode;

use clap::Parser;
use portal_shared::config::Config;
use serde_json::json;

use crate::cli::Cli;
use crate::commands::Ctx;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, args.iter().any(|a| a == "--json")),
    };
    let json = cli.json;

    let config = match load_config() {
        Ok(c) => c,
        Err(message) => return config_error(&message, json),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::stderr(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // sqlx spawns the pool's maintenance task, which needs the runtime.
    let _entered = runtime.enter();
    let pool = match portal_shared::pg::pool(&config) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("configuration error: DATABASE_URL is not usable ({e})");
            return config_error(&message, json);
        }
    };

    let result = runtime.block_on(async {
        let ctx = Ctx { config, pool };
        let result = commands::run(&ctx, cli.command).await;
        ctx.pool.close().await;
        result
    });

    match result {
        Ok(outcome) => {
            if json {
                output::json(&outcome.json);
            } else {
                output::stdout(&outcome.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::stderr(&e.to_text());
            if json {
                output::json(&e.to_json());
            }
            ExitCode::FAILURE
        }
    }
}

/// Reads `.env` (when present) and the environment. Every problem is one line naming the variable.
fn load_config() -> Result<Config, String> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(format!("configuration error: .env: {e}")),
    }
    Config::from_env().map_err(|e| e.to_string())
}

/// Configuration problems: exit code 2, like a missing setting at api/worker start-up.
fn config_error(message: &str, json: bool) -> ExitCode {
    output::stderr(message);
    if json {
        output::json(&json!({ "error": { "code": "CONFIG_ERROR", "message": message } }));
    }
    ExitCode::from(2)
}

/// Help and version go to stdout with exit 0; usage errors to stderr with exit 2 (and, with
/// `--json`, an error object on stdout).
fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    output::stderr(rendered.trim_end());
    if json {
        // The first paragraph of clap's message ("error: …" and any indented continuation lines).
        let message = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let message = message.trim_start_matches("error: ");
        output::json(&json!({ "error": { "code": "USAGE_ERROR", "message": message } }));
    }
    ExitCode::from(2)
}
