//! Products: partner CRUD under `/partner/products` (JWT) and the app's read-only view under
//! `/products` (X-API-Key, active products only).

use portal_shared::domain::pagination::Page;
use portal_shared::error::AppError;
use portal_shared::pg::{audit, products};
use salvo::oapi::extract::PathParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::body::Body;
use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{app_client, client_ip, request_id, staff, state};
use crate::params::{self, FromQuery, Paging, Query, QueryReader, Reported};
use portal_shared::domain::ids::{ClientId, ProductId};

#[derive(Serialize, ToSchema)]
pub struct ProductList {
    pub products: Vec<products::Product>,
    pub pagination: PaginationDoc,
}

fn parse_id(raw: &str) -> Result<ProductId, AppError> {
    params::path_id(raw, "product")
}

fn parse_featured(raw: Option<&str>) -> Result<Option<bool>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(AppError::validation("featured", "must be true or false")),
    }
}

/// List products: `status`, `productType`, `search` (name or description), `featured`;
/// `sort` = newest, oldest, price_asc, price_desc, sort_order (default); `limit` ≤ 50.
#[allow(clippy::too_many_arguments)]
#[endpoint(
    tags("products"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
        ("status" = Option<crate::doc::ProductStatus>, Query),
        ("productType" = Option<String>, Query, pattern = "^[^\\u0000]*$"),
        ("search" = Option<String>, Query, max_length = 100, pattern = "^[^\\u0000]*$", description = "Part of the name or description"),
        ("featured" = Option<crate::doc::Flag>, Query),
        ("sort" = Option<crate::doc::ProductSort>, Query),
    )
)]
pub async fn list(
    query: Query<ProductQuery>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    list_page(&st.db, s.client_id, query.0).await
}

/// The query of both product lists. The app's list has no `status` parameter: it sees active
/// products only.
pub struct ProductQuery {
    filter: products::ListFilter,
    /// An order of the seed's named product orders.
    sort: &'static str,
    page: Page,
}

impl ProductQuery {
    fn read(
        q: &QueryReader<'_>,
        status: Option<products::ProductStatus>,
    ) -> Result<Self, Reported> {
        let product_type = q.parse("productType", |v| params::text(v, "productType", None));
        let search = q.parse("search", params::search);
        let featured = q.parse("featured", parse_featured);
        let sort = q.parse("sort", products::parse_sort);
        let page = q.page(products::MAX_LIMIT);
        Ok(Self {
            filter: products::ListFilter {
                status,
                product_type: product_type?,
                search: search?,
                featured: featured?,
            },
            sort: sort?,
            page: page?,
        })
    }
}

impl FromQuery for ProductQuery {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported> {
        let status = q.parse("status", products::parse_status);
        let mut query = Self::read(q, None)?;
        query.filter.status = status?;
        Ok(query)
    }

    fn document(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation) {
        <Paging<{ products::MAX_LIMIT }> as salvo::oapi::EndpointArgRegister>::register(c, op, "");
    }
}

/// [`ProductQuery`] of the app's list: active products only.
pub struct ActiveProductQuery(ProductQuery);

impl FromQuery for ActiveProductQuery {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported> {
        ProductQuery::read(q, Some(products::ProductStatus::Active)).map(Self)
    }

    fn document(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation) {
        <Paging<{ products::MAX_LIMIT }> as salvo::oapi::EndpointArgRegister>::register(c, op, "");
    }
}

async fn list_page(
    db: &sqlx::PgPool,
    client_id: ClientId,
    q: ProductQuery,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let p = q.page;
    let (rows, total) = products::list(db, client_id, &q.filter, q.sort, p).await?;
    Ok(ok(ProductList {
        products: rows,
        pagination: p.pagination(total).into(),
    }))
}

/// One product of the client.
#[endpoint(
    tags("products"),
    security(("bearer" = [])),
    status_codes(200, 401, 404, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn get(
    id: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(products::get(
        &st.db,
        s.client_id,
        parse_id(&id)?,
        false,
    )
    .await?))
}

/// Create a product.
#[endpoint(
    tags("products"),
    security(("bearer" = [])),
    status_codes(201, 400, 401, 403, 413, 503),
    responses((status_code = 201, description = "Created", body = Envelope<products::Product>))
)]
pub async fn create(
    body: Body<products::NewProduct>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let input = body.into_inner().0;
    let p = products::create(&st.db, s.client_id, &input).await?;
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ProductsCreate,
    )
    .target("product", p.id)
    .details(serde_json::json!({"name": p.name, "status": p.status}))
    .origin(client_ip(req), request_id(depot));
    audit::record(&st.db, &entry).await?;
    res.status_code(StatusCode::CREATED);
    res.add_header("location", format!("/partner/products/{}", p.id), true)
        .ok();
    Ok(ok(p))
}

/// Update a product: send only the fields to change.
#[endpoint(
    tags("products"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 403, 404, 413, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn update(
    id: PathParam<String>,
    body: Body<products::ProductChange>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = parse_id(&id)?;
    let input = body.into_inner().0;
    let p = products::update(&st.db, s.client_id, id, &input).await?;
    let fields = input.given_fields();
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ProductsUpdate,
    )
    .target("product", p.id)
    .details(serde_json::json!({ "fields": fields }))
    .origin(client_ip(req), request_id(depot));
    audit::record(&st.db, &entry).await?;
    Ok(ok(p))
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

/// Delete a product permanently.
#[endpoint(
    tags("products"),
    security(("bearer" = [])),
    status_codes(200, 401, 403, 404, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn delete(
    id: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<Deleted>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = parse_id(&id)?;
    products::delete(&st.db, s.client_id, id).await?;
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ProductsDelete,
    )
    .target("product", id)
    .origin(client_ip(req), request_id(depot));
    audit::record(&st.db, &entry).await?;
    Ok(ok(Deleted { deleted: true }))
}

/// The app's store: active products of the key's client (`productType`, `search`, `featured`,
/// `sort`, `page`, `limit` ≤ 50).
#[allow(clippy::too_many_arguments)]
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
        ("productType" = Option<String>, Query, pattern = "^[^\\u0000]*$"),
        ("search" = Option<String>, Query, max_length = 100, pattern = "^[^\\u0000]*$", description = "Part of the name or description"),
        ("featured" = Option<crate::doc::Flag>, Query),
        ("sort" = Option<crate::doc::ProductSort>, Query),
    )
)]
pub async fn app_list(
    query: Query<ActiveProductQuery>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    list_page(&st.db, c.client_id, query.0 .0).await
}

/// One active product of the key's client.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    status_codes(200, 401, 404, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn app_get(
    id: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    Ok(ok(
        products::get(&st.db, c.client_id, parse_id(&id)?, true).await?
    ))
}

/// Product types of the key's client's active products, with counts.
#[endpoint(tags("app"), security(("api_key" = [])), status_codes(200, 401, 503))]
pub async fn app_types(depot: &mut Depot) -> ApiResult<Json<Envelope<Vec<products::TypeCount>>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    Ok(ok(products::active_types(&st.db, c.client_id).await?))
}
