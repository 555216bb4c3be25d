//! How an [`AppError`] becomes an HTTP response: the SPEC envelope, its status, `Retry-After` on
//! 429/503, and the request id for correlation. Internal errors are logged here, once.

use portal_shared::error::AppError;
use salvo::http::header::{HeaderValue, RETRY_AFTER};
use salvo::http::{ParseError, ResBody};
use salvo::oapi::{Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use salvo::request_id::RequestIdDepotExt;
use serde::Serialize;

/// The error every handler returns. Wraps [`AppError`] (which lives in the shared crate and knows
/// nothing of HTTP frameworks).
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Failure envelope, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "ErrorEnvelope"))]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "Error"))]
pub struct ErrorBody {
    /// Machine-readable code: VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT,
    /// RATE_LIMITED, SERVICE_UNAVAILABLE, ...
    pub code: String,
    pub message: String,
    pub details: Option<Vec<FieldErrorDoc>>,
}

#[derive(Serialize, ToSchema)]
#[salvo(schema(name = "FieldError"))]
pub struct FieldErrorDoc {
    pub field: String,
    pub message: String,
}

pub fn write_error(err: &AppError, depot: &Depot, res: &mut Response) {
    if let AppError::Internal(text) = err {
        tracing::error!(request_id = depot.request_id().unwrap_or("-"), error = %text, "internal error");
    }
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.status_code(status);
    if let Some(secs) = err.retry_after() {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    res.render(Json(err.envelope()));
}

#[async_trait]
impl Writer for ApiError {
    async fn write(self, _req: &mut Request, depot: &mut Depot, res: &mut Response) {
        write_error(&self.0, depot, res);
    }
}

impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        for (code, desc) in [
            (
                "400",
                "Invalid input (VALIDATION_ERROR), with per-field details",
            ),
            ("401", "Missing or invalid credentials"),
            ("403", "Not allowed for this caller"),
            ("404", "Not found for this caller"),
            ("429", "Too many attempts; see Retry-After"),
            (
                "503",
                "A dependency is unavailable, or a query ran past its time limit; see Retry-After",
            ),
        ] {
            operation.responses.insert(
                code,
                salvo::oapi::Response::new(desc)
                    .add_content("application/json", ErrorEnvelope::to_schema(components)),
            );
        }
    }
}

/// Turns salvo's own error responses (unknown route, wrong method, body that failed to parse,
/// body too large, panics, timeouts) into the same envelope.
#[handler]
pub async fn catcher(depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let parse_error = match &res.body {
        ResBody::Error(e) => e
            .cause
            .as_ref()
            .and_then(|c| c.downcast_ref::<ParseError>())
            .map(|pe| pe.to_string()),
        _ => None,
    };
    let (code, message) = match status.as_u16() {
        400 => (
            "VALIDATION_ERROR",
            match parse_error {
                Some(detail) => format!(
                    "the request could not be parsed: {}",
                    clean_parse_error(&detail)
                ),
                None => "the request could not be parsed".into(),
            },
        ),
        401 => ("UNAUTHORIZED", "authentication required".into()),
        403 => ("FORBIDDEN", "not allowed".into()),
        404 => ("NOT_FOUND", "no such route".into()),
        405 => (
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route".into(),
        ),
        413 => ("PAYLOAD_TOO_LARGE", "request body is too large".into()),
        415 => (
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json".into(),
        ),
        503 => {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            (
                "SERVICE_UNAVAILABLE",
                "the service is busy; retry shortly".into(),
            )
        }
        s if s >= 500 => {
            tracing::error!(
                request_id = depot.request_id().unwrap_or("-"),
                status = s,
                "internal error in the framework (panic or unexpected failure)"
            );
            ("INTERNAL_ERROR", "an unexpected error occurred".into())
        }
        _ => (
            "BAD_REQUEST",
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_string(),
        ),
    };
    res.render(Json(serde_json::json!({
        "success": false,
        "error": { "code": code, "message": message },
    })));
    ctrl.skip_rest();
}

/// serde's messages are useful ("missing field `quantity` at line 1 column 12"); salvo wraps them
/// in its own prefix which means nothing to a caller.
fn clean_parse_error(detail: &str) -> String {
    detail
        .trim_start_matches("serde json error: ")
        .trim()
        .to_string()
}
