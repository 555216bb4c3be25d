use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    portal_shared::telemetry::serve("portal-api", portal_api::run).await
}
