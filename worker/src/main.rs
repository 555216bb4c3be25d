use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    portal_shared::telemetry::serve("portal-worker", portal_worker::run).await
}
