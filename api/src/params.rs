//! Request parameters several resources read the same way.

use portal_shared::error::{AppError, FieldError};
use uuid::Uuid;

/// An id in the path. A malformed one cannot name anything: it answers the same 404 as an unknown
/// one (`what` names the resource).
pub fn path_id<T: From<Uuid>>(raw: &str, what: &str) -> Result<T, AppError> {
    Uuid::parse_str(raw.trim())
        .map(T::from)
        .map_err(|_| AppError::not_found(what))
}

/// A free-text query value: at most `max` characters (when given) and no U+0000 (Postgres cannot
/// hold it); then trimmed, and empty means none.
pub fn text(
    raw: Option<&str>,
    field: &str,
    max: Option<usize>,
) -> Result<Option<String>, AppError> {
    if let (Some(s), Some(max)) = (raw, max) {
        if s.chars().count() > max {
            return Err(AppError::validation(
                field,
                format!("must be at most {max} characters"),
            ));
        }
    }
    if raw.is_some_and(|s| s.contains('\0')) {
        return Err(AppError::validation(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// A free-text `search`: at most 100 characters.
pub fn search(raw: Option<&str>) -> Result<Option<String>, AppError> {
    text(raw, "search", Some(100))
}

/// An extractor reading query values only: `query_extractor!(Type, |req| -> Result<Type, _>)`.
macro_rules! query_extractor {
    ($ty:ident $(<const $c:ident: $ct:ty>)?, |$req:ident| $body:expr) => {
        impl<'ex $(, const $c: $ct)?> salvo::extract::Extractible<'ex> for $ty$(<$c>)? {
            fn metadata() -> &'static salvo::extract::Metadata {
                static METADATA: salvo::extract::Metadata = salvo::extract::Metadata::new("");
                &METADATA
            }

            #[allow(refining_impl_trait)]
            async fn extract(
                $req: &'ex mut salvo::Request,
                _depot: &'ex mut salvo::Depot,
            ) -> Result<Self, crate::error::ApiError> {
                $body
            }
        }
    };
}

/// Documents optional query parameters `(name, schema, description)` on an operation.
fn register_optional_query<S, D>(
    operation: &mut salvo::oapi::Operation,
    params: impl IntoIterator<Item = (&'static str, S, D)>,
) where
    S: Into<salvo::oapi::RefOr<salvo::oapi::schema::Schema>>,
    D: Into<String>,
{
    for (name, schema, description) in params {
        operation.parameters.insert(
            salvo::oapi::Parameter::new(name)
                .location(salvo::oapi::ParameterIn::Query)
                .description(description)
                .schema(schema)
                .required(false),
        );
    }
}

/// The day range of analytics and the funnel as the caller gave it: `period`, or `startDate` and
/// `endDate` (turned into the client's days by [`portal_shared::ch::analytics::parse_range`]).
/// One extractor, so both endpoints read and document the same three query parameters.
#[derive(Debug, Clone, Default)]
pub struct RangeQuery {
    pub period: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

query_extractor!(RangeQuery, |req| Ok(RangeQuery {
    period: req.query::<String>("period"),
    start_date: req.query::<String>("startDate"),
    end_date: req.query::<String>("endDate"),
}));

impl salvo::oapi::EndpointArgRegister for RangeQuery {
    fn register(
        components: &mut salvo::oapi::Components,
        operation: &mut salvo::oapi::Operation,
        _arg: &str,
    ) {
        use salvo::oapi::ToSchema;
        let params = [
            (
                "period",
                crate::doc::Period::to_schema(components),
                "Not together with startDate/endDate",
            ),
            (
                "startDate",
                chrono::NaiveDate::to_schema(components),
                "With endDate; not after it",
            ),
            (
                "endDate",
                chrono::NaiveDate::to_schema(components),
                "With startDate; at most 366 days after it, counting both",
            ),
        ];
        register_optional_query(operation, params);
    }
}

/// `page` and `limit` of a list (at most `MAX` items a page), parsed into a [`Page`]: both
/// problems reported at once, and documented with their bounds.
///
/// [`Page`]: portal_shared::domain::pagination::Page
#[derive(Debug, Clone, Copy)]
pub struct Paging<const MAX: u32>(pub portal_shared::domain::pagination::Page);

query_extractor!(Paging<const MAX: u32>, |req| {
    let page = req.query::<String>("page");
    let limit = req.query::<String>("limit");
    Ok(Paging(portal_shared::domain::pagination::Page::parse(
        page.as_deref(),
        limit.as_deref(),
        MAX,
    )?))
});

impl<const MAX: u32> salvo::oapi::EndpointArgRegister for Paging<MAX> {
    fn register(
        _components: &mut salvo::oapi::Components,
        operation: &mut salvo::oapi::Operation,
        _arg: &str,
    ) {
        use salvo::oapi::schema::{BasicType, KnownFormat, Object, SchemaFormat};
        let bounded = |max: u32| {
            Object::new()
                .schema_type(BasicType::Integer)
                .format(SchemaFormat::KnownFormat(KnownFormat::UInt32))
                .minimum(1)
                .maximum(f64::from(max))
        };
        let params = [
            (
                "page",
                bounded(portal_shared::domain::pagination::MAX_PAGE),
                "Page number, from 1 (default 1)".to_string(),
            ),
            (
                "limit",
                bounded(MAX),
                format!("Items per page, 1 to {MAX} (default {})", 20.min(MAX)),
            ),
        ];
        register_optional_query(operation, params);
    }
}

/// A failed query value, already recorded in its [`QueryReader`].
#[derive(Debug)]
pub struct Reported;

/// Reads a request's query values for a [`FromQuery`] type, recording every value's problem so
/// that all of them are answered at once.
pub struct QueryReader<'a> {
    req: &'a salvo::Request,
    problems: std::cell::RefCell<Vec<FieldError>>,
}

impl QueryReader<'_> {
    /// The value of `name` read by `parse` (which gets the raw value, `None` when absent).
    pub fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(Option<&str>) -> Result<T, AppError>,
    ) -> Result<T, Reported> {
        let raw = self.req.query::<String>(name);
        parse(raw.as_deref()).map_err(|e| {
            let mut problems = self.problems.borrow_mut();
            match e {
                AppError::Validation { details, .. } if !details.is_empty() => {
                    problems.extend(details)
                }
                other => problems.push(FieldError::new(name, other.public_message())),
            }
            Reported
        })
    }

    /// `page` and `limit` (at most `max` items a page), each problem recorded.
    pub fn page(&self, max: u32) -> Result<portal_shared::domain::pagination::Page, Reported> {
        let limit = self.req.query::<String>("limit");
        self.parse("page", |page| {
            portal_shared::domain::pagination::Page::parse(page, limit.as_deref(), max)
        })
    }
}

/// A list's query parameters as one typed value. Its parameters are documented by the endpoint's
/// `parameters(...)` next to the handler.
pub trait FromQuery: Sized {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported>;

    /// Documents what the endpoint's `parameters(...)` does not (e.g. paging, see [`Paging`]).
    fn document(_: &mut salvo::oapi::Components, _: &mut salvo::oapi::Operation) {}
}

/// The typed query `T` of a request: every bad value answered at once (400 with one detail per
/// field).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<'ex, T: FromQuery + Send> salvo::extract::Extractible<'ex> for Query<T> {
    fn metadata() -> &'static salvo::extract::Metadata {
        static METADATA: salvo::extract::Metadata = salvo::extract::Metadata::new("");
        &METADATA
    }

    #[allow(refining_impl_trait)]
    async fn extract(
        req: &'ex mut salvo::Request,
        _depot: &'ex mut salvo::Depot,
    ) -> Result<Self, crate::error::ApiError> {
        let reader = QueryReader {
            req,
            problems: Default::default(),
        };
        match T::from_query(&reader) {
            Ok(value) => Ok(Query(value)),
            Err(Reported) => Err(AppError::validation_many(reader.problems.into_inner()).into()),
        }
    }
}

impl<T: FromQuery> salvo::oapi::EndpointArgRegister for Query<T> {
    fn register(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation, _: &str) {
        T::document(c, op);
    }
}
