use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // `portal-api openapi` prints the OpenAPI document and exits (no configuration needed): the
    // web portal's request and response types are generated from it.
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        let doc = portal_api::openapi(&portal_api::api_router());
        return match doc.to_pretty_json() {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("could not render the OpenAPI document: {e}");
                ExitCode::FAILURE
            }
        };
    }
    portal_shared::telemetry::serve("portal-api", portal_api::run).await
}
