//! Products: partner CRUD under `/partner/products` (JWT) and the app's read-only view under
//! `/products` (X-API-Key, active products only).

use portal_shared::domain::pagination::Page;
use portal_shared::error::AppError;
use portal_shared::pg::{audit, products};
use salvo::oapi::extract::{JsonBody, PathParam, QueryParam};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{app_client, client_ip, request_id, staff, state};
use crate::params;
use portal_shared::domain::ids::{ClientId, ProductId};

/// Request body of create. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[salvo(schema(example = json!({"name": "Protein Powder", "description": "Premium whey protein isolate", "image": "https://example.com/image.jpg", "price": "29.99", "currency": "USD", "externalUrl": "https://shop.example.com/protein", "productType": "Supplements", "featured": false, "status": "draft", "sortOrder": 0})))]
pub struct ProductCreate {
    /// 1 to 200 characters, not blank.
    #[salvo(schema(
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: String,
    /// At most 5000 characters; `null` means empty.
    #[salvo(schema(max_length = 5000, pattern = "^[^\\u0000]*$"))]
    pub description: Option<String>,
    /// Absolute http(s) URL (at most 2048 characters); `null` clears it.
    #[salvo(schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    ))]
    pub image: Option<String>,
    /// Decimal string with at most 10 digits before and 2 after the point, e.g. "29.99"; `null`
    /// clears it.
    #[salvo(schema(pattern = "^[0-9]{1,10}([.][0-9]{1,2})?$"))]
    pub price: Option<String>,
    /// 3 upper-case letters (default USD).
    #[salvo(schema(required = false, pattern = "^[A-Z]{3}$"))]
    pub currency: String,
    /// Absolute http(s) URL (at most 2048 characters); `null` clears it.
    #[salvo(schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    ))]
    pub external_url: Option<String>,
    /// At most 100 characters; empty or `null` clears it.
    #[salvo(schema(max_length = 100, pattern = "^[^\\u0000]*$"))]
    pub product_type: Option<String>,
    #[salvo(schema(required = false))]
    pub featured: bool,
    /// draft (default), active or archived.
    #[salvo(schema(required = false, value_type = crate::doc::ProductStatus))]
    pub status: String,
    /// -1000000 to 1000000 (default 0).
    #[salvo(schema(required = false, minimum = -1000000, maximum = 1000000))]
    pub sort_order: i32,
}

/// Request body of update: any non-empty subset of the create fields; `null` clears an optional
/// field. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[salvo(schema(min_properties = 1, example = json!({"price": "24.99", "featured": true})))]
pub struct ProductUpdate {
    /// 1 to 200 characters, not blank.
    #[salvo(schema(
        required = false,
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: String,
    /// At most 5000 characters; `null` means empty.
    #[salvo(schema(max_length = 5000, pattern = "^[^\\u0000]*$"))]
    pub description: Option<String>,
    /// Absolute http(s) URL (at most 2048 characters); `null` clears it.
    #[salvo(schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    ))]
    pub image: Option<String>,
    /// Decimal string with at most 10 digits before and 2 after the point, e.g. "29.99"; `null`
    /// clears it.
    #[salvo(schema(pattern = "^[0-9]{1,10}([.][0-9]{1,2})?$"))]
    pub price: Option<String>,
    /// 3 upper-case letters (default USD).
    #[salvo(schema(required = false, pattern = "^[A-Z]{3}$"))]
    pub currency: String,
    /// Absolute http(s) URL (at most 2048 characters); `null` clears it.
    #[salvo(schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"
    ))]
    pub external_url: Option<String>,
    /// At most 100 characters; empty or `null` clears it.
    #[salvo(schema(max_length = 100, pattern = "^[^\\u0000]*$"))]
    pub product_type: Option<String>,
    #[salvo(schema(required = false))]
    pub featured: bool,
    /// draft (default), active or archived.
    #[salvo(schema(required = false, value_type = crate::doc::ProductStatus))]
    pub status: String,
    /// -1000000 to 1000000 (default 0).
    #[salvo(schema(required = false, minimum = -1000000, maximum = 1000000))]
    pub sort_order: i32,
}

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
        ("page" = Option<u32>, Query, minimum = 1, maximum = 4194303),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50),
    )
)]
pub async fn list(
    status: QueryParam<String, false>,
    #[allow(non_snake_case)] productType: QueryParam<String, false>,
    search: QueryParam<String, false>,
    featured: QueryParam<String, false>,
    sort: QueryParam<String, false>,
    page: QueryParam<String, false>,
    limit: QueryParam<String, false>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let status = products::parse_status(status.as_deref())?;
    list_page(
        &st.db,
        s.client_id,
        status,
        ListQuery {
            product_type: productType.as_deref(),
            search: search.as_deref(),
            featured: featured.as_deref(),
            sort: sort.as_deref(),
            page: page.as_deref(),
            limit: limit.as_deref(),
        },
    )
    .await
}

/// The query both lists take (the app's has no `status`: it sees active products only).
struct ListQuery<'a> {
    product_type: Option<&'a str>,
    search: Option<&'a str>,
    featured: Option<&'a str>,
    sort: Option<&'a str>,
    page: Option<&'a str>,
    limit: Option<&'a str>,
}

async fn list_page(
    db: &sqlx::PgPool,
    client_id: ClientId,
    status: Option<products::ProductStatus>,
    q: ListQuery<'_>,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let p = Page::parse(q.page, q.limit, products::MAX_LIMIT)?;
    let order = products::parse_sort(q.sort)?;
    let filter = products::ListFilter {
        status,
        product_type: params::text(q.product_type, "productType", None)?,
        search: params::search(q.search)?,
        featured: parse_featured(q.featured)?,
    };
    let (rows, total) = products::list(db, client_id, &filter, order, p).await?;
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
    request_body = ProductCreate,
    status_codes(201, 400, 401, 403, 413, 503),
    responses((status_code = 201, description = "Created", body = Envelope<products::Product>))
)]
pub async fn create(
    body: JsonBody<serde_json::Value>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let input = products::ProductInput::parse(&body.into_inner(), false)?;
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
    request_body = ProductUpdate,
    status_codes(200, 400, 401, 403, 404, 413, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn update(
    id: PathParam<String>,
    body: JsonBody<serde_json::Value>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<products::Product>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = parse_id(&id)?;
    let body = body.into_inner();
    let input = products::ProductInput::parse(&body, true)?;
    let p = products::update(&st.db, s.client_id, id, &input).await?;
    let fields: Vec<&String> = body
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
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
        ("page" = Option<u32>, Query, minimum = 1, maximum = 4194303),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50),
    )
)]
pub async fn app_list(
    #[allow(non_snake_case)] productType: QueryParam<String, false>,
    search: QueryParam<String, false>,
    featured: QueryParam<String, false>,
    sort: QueryParam<String, false>,
    page: QueryParam<String, false>,
    limit: QueryParam<String, false>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ProductList>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    list_page(
        &st.db,
        c.client_id,
        Some(products::ProductStatus::Active),
        ListQuery {
            product_type: productType.as_deref(),
            search: search.as_deref(),
            featured: featured.as_deref(),
            sort: sort.as_deref(),
            page: page.as_deref(),
            limit: limit.as_deref(),
        },
    )
    .await
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
