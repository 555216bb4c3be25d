//! `Body<T>`: a JSON request body read into the typed request `T` ([`FromJson`]), every field
//! error reported at once in the error envelope, and documented in the OpenAPI document by `T`'s
//! own schema, so the type a handler works with is the type the document describes.

use std::fmt;

use portal_shared::domain::json::FromJson;
use salvo::extract::{Extractible, Metadata};
use salvo::http::ParseError;
use salvo::oapi::{Components, Content, EndpointArgRegister, Operation, RequestBody, ToSchema};
use salvo::prelude::*;

use crate::error::ApiError;

/// A typed JSON request body, with the JSON it was read from (for what must see the body as
/// sent, such as an idempotency key's request hash).
#[derive(Debug)]
pub struct Body<T> {
    value: T,
    raw: serde_json::Value,
}

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The body as sent.
    pub fn raw(&self) -> &serde_json::Value {
        &self.raw
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Why a body was refused: not JSON at all (salvo's parse error, turned into the envelope by the
/// catcher like every other parse failure), or JSON whose fields are wrong.
#[derive(Debug)]
pub enum BodyError {
    Parse(ParseError),
    Invalid(ApiError),
}

#[async_trait]
impl Writer for BodyError {
    async fn write(self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        match self {
            BodyError::Parse(e) => e.write(req, depot, res).await,
            BodyError::Invalid(e) => e.write(req, depot, res).await,
        }
    }
}

impl<'ex, T: FromJson + Send + fmt::Debug> Extractible<'ex> for Body<T> {
    fn metadata() -> &'static Metadata {
        static METADATA: Metadata = Metadata::new("");
        &METADATA
    }

    #[allow(refining_impl_trait)]
    async fn extract(req: &'ex mut Request, _depot: &'ex mut Depot) -> Result<Self, BodyError> {
        let raw: serde_json::Value = req.parse_json().await.map_err(BodyError::Parse)?;
        match T::from_json(&raw) {
            Ok(value) => Ok(Body { value, raw }),
            Err(e) => Err(BodyError::Invalid(e.into())),
        }
    }
}

impl<T: ToSchema> EndpointArgRegister for Body<T> {
    fn register(components: &mut Components, operation: &mut Operation, _arg: &str) {
        let schema = T::to_schema(components);
        operation.request_body = Some(
            RequestBody::new()
                .add_content("application/json", Content::new(schema))
                .required(salvo::oapi::Required::True),
        );
    }
}
