use std::process::ExitCode;

use portal_shared::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    portal_shared::telemetry::init_tracing(config.log_format);
    match portal_worker::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "portal-worker failed");
            eprintln!("portal-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
