//! Affiliate products shown in the app's store section.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};

use crate::domain::ids::{ClientId, ProductId};
use crate::domain::json::FromJson;
use crate::domain::pagination::Page;
pub use crate::domain::status::ProductStatus;
use crate::error::{AppError, AppResult, FieldError};
use crate::pg::like_pattern;

pub const MAX_LIMIT: u32 = 50;

/// A product, as the partner and app routes return it.
#[derive(Debug, Clone, FromRow, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "Product", example = json!({"id": "01a212bf-0aca-743e-b263-3e36ed0b7418", "name": "Protein Powder", "description": "Premium whey protein...", "image": "https://example.com/image.jpg", "price": "29.99", "currency": "USD", "externalUrl": "https://shop.example.com/protein", "productType": "Supplements", "featured": true, "status": "active", "sortOrder": 0, "createdAt": "2026-03-01T00:00:00Z", "updatedAt": "2026-03-01T00:00:00Z"})))]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: String,
    pub image: Option<String>,
    /// Decimal string, two places.
    pub price: Option<String>,
    pub currency: String,
    pub external_url: Option<String>,
    pub product_type: Option<String>,
    pub featured: bool,
    /// `draft | active | archived`.
    pub status: ProductStatus,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Product`] for statements built at run time (the checked queries below spell
/// them out, as `query_as!` needs a literal).
const COLUMNS: &str = "id, name, description, image, price::text AS price, currency, external_url,
    product_type, featured, status, sort_order, created_at, updated_at";

/// Validated product fields; `None` means "not given" (create: default; update: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub image: Option<Option<String>>,
    pub price: Option<Option<String>>,
    pub currency: Option<String>,
    pub external_url: Option<Option<String>>,
    pub product_type: Option<Option<String>>,
    pub featured: Option<bool>,
    pub status: Option<ProductStatus>,
    pub sort_order: Option<i32>,
}

/// The body of `POST /partner/products`: a product's fields, `name` required.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct(pub ProductInput);

/// The body of `PATCH /partner/products/{id}`: the fields to change.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductChange(pub ProductInput);

impl FromJson for NewProduct {
    fn from_json(body: &Value) -> AppResult<Self> {
        ProductInput::parse(body, false).map(Self)
    }
}

impl FromJson for ProductChange {
    fn from_json(body: &Value) -> AppResult<Self> {
        ProductInput::parse(body, true).map(Self)
    }
}

impl salvo_oapi::ToSchema for NewProduct {
    fn to_schema(c: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        body_schema::ProductCreate::to_schema(c)
    }
}

impl salvo_oapi::ToSchema for ProductChange {
    fn to_schema(c: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        body_schema::ProductUpdate::to_schema(c)
    }
}

/// The JSON Schema of the two bodies. [`ProductInput`] keeps "not given", `null` and a value
/// apart (`Option<Option<_>>`), which JSON Schema states per field as below; these structs only
/// describe the wire form, and [`ProductInput::parse`] is the one reader.
mod body_schema {
    #![allow(dead_code)]
    use salvo_oapi::ToSchema;
    use serde::Deserialize;

    use crate::domain::status::ProductStatus;

    /// Request body of create. Unknown fields are refused.
    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[salvo(schema(name = "ProductCreate", example = json!({"name": "Protein Powder", "description": "Premium whey protein isolate", "image": "https://example.com/image.jpg", "price": "29.99", "currency": "USD", "externalUrl": "https://shop.example.com/protein", "productType": "Supplements", "featured": false, "status": "draft", "sortOrder": 0})))]
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
        #[salvo(schema(required = false, value_type = ProductStatus))]
        pub status: String,
        /// -1000000 to 1000000 (default 0).
        #[salvo(schema(required = false, minimum = -1000000, maximum = 1000000))]
        pub sort_order: i32,
    }

    /// Request body of update: any non-empty subset of the create fields; `null` clears an optional
    /// field. Unknown fields are refused.
    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[salvo(schema(name = "ProductUpdate", min_properties = 1, example = json!({"price": "24.99", "featured": true})))]
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
        #[salvo(schema(required = false, value_type = ProductStatus))]
        pub status: String,
        /// -1000000 to 1000000 (default 0).
        #[salvo(schema(required = false, minimum = -1000000, maximum = 1000000))]
        pub sort_order: i32,
    }
}

fn http_url(s: &str) -> bool {
    s.len() <= 2048
        && url::Url::parse(s)
            .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some())
            .unwrap_or(false)
}

fn price_ok(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.len() <= 10
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 2
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(s.contains('.') && frac.is_empty())
}

impl ProductInput {
    /// The fields a body gave, by their JSON names in alphabetical order (for the audit log).
    pub fn given_fields(&self) -> Vec<&'static str> {
        let given = [
            ("currency", self.currency.is_some()),
            ("description", self.description.is_some()),
            ("externalUrl", self.external_url.is_some()),
            ("featured", self.featured.is_some()),
            ("image", self.image.is_some()),
            ("name", self.name.is_some()),
            ("price", self.price.is_some()),
            ("productType", self.product_type.is_some()),
            ("sortOrder", self.sort_order.is_some()),
            ("status", self.status.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, g)| *g)
            .map(|(f, _)| f)
            .collect()
    }

    /// Parses a create (`partial = false`: `name` required) or update body. Unknown fields, wrong
    /// types and out-of-range values are all reported at once.
    pub fn parse(body: &Value, partial: bool) -> AppResult<Self> {
        let Some(map): Option<&Map<String, Value>> = body.as_object() else {
            return Err(AppError::bad_request("body must be a JSON object"));
        };
        let mut e = Vec::new();
        let mut p = ProductInput::default();
        let text =
            |v: &Value, field: &str, max: usize, e: &mut Vec<FieldError>| -> Option<String> {
                match v.as_str() {
                    Some(s) if s.contains('\0') => {
                        e.push(FieldError::new(field, "must not contain NUL characters"));
                        None
                    }
                    Some(s) if s.chars().count() <= max => Some(s.trim().to_string()),
                    Some(_) => {
                        e.push(FieldError::new(
                            field,
                            format!("must be at most {max} characters"),
                        ));
                        None
                    }
                    None => {
                        e.push(FieldError::new(field, "must be a string"));
                        None
                    }
                }
            };
        for (k, v) in map {
            match k.as_str() {
                "name" => match text(v, "name", 200, &mut e) {
                    Some(s) if s.is_empty() => e.push(FieldError::new("name", "must not be empty")),
                    Some(s) => p.name = Some(s),
                    None => {}
                },
                "description" => {
                    if v.is_null() {
                        p.description = Some(String::new());
                    } else if let Some(s) = text(v, "description", 5000, &mut e) {
                        p.description = Some(s);
                    }
                }
                "image" | "externalUrl" => {
                    let val = if v.is_null() {
                        Some(None)
                    } else {
                        match v.as_str() {
                            Some(s) if http_url(s.trim()) => Some(Some(s.trim().to_string())),
                            _ => {
                                e.push(FieldError::new(
                                    k.clone(),
                                    "must be an absolute http(s) URL",
                                ));
                                None
                            }
                        }
                    };
                    if k == "image" {
                        p.image = val;
                    } else {
                        p.external_url = val;
                    }
                }
                "price" => {
                    if v.is_null() {
                        p.price = Some(None);
                    } else {
                        match v.as_str().map(str::trim) {
                            Some(s) if price_ok(s) => p.price = Some(Some(s.to_string())),
                            _ => e.push(FieldError::new(
                                "price",
                                "must be a decimal string with at most 2 decimal places, e.g. \"29.99\"",
                            )),
                        }
                    }
                }
                "currency" => match v.as_str() {
                    Some(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
                        p.currency = Some(s.to_string())
                    }
                    _ => e.push(FieldError::new(
                        "currency",
                        "must be 3 upper-case letters, e.g. USD",
                    )),
                },
                "productType" => {
                    if v.is_null() {
                        p.product_type = Some(None);
                    } else if let Some(s) = text(v, "productType", 100, &mut e) {
                        p.product_type = Some(if s.is_empty() { None } else { Some(s) });
                    }
                }
                "featured" => match v.as_bool() {
                    Some(b) => p.featured = Some(b),
                    None => e.push(FieldError::new("featured", "must be true or false")),
                },
                "status" => match v.as_str().and_then(ProductStatus::from_word) {
                    Some(s) => p.status = Some(s),
                    _ => e.push(FieldError::new(
                        "status",
                        "must be draft, active or archived",
                    )),
                },
                "sortOrder" => {
                    match crate::domain::json::whole_number(v).and_then(|n| i32::try_from(n).ok()) {
                        Some(n) if (-1_000_000..=1_000_000).contains(&n) => p.sort_order = Some(n),
                        _ => e.push(FieldError::new(
                            "sortOrder",
                            "must be a whole number from -1000000 to 1000000",
                        )),
                    }
                }
                other => e.push(FieldError::new(other, "is not a product field")),
            }
        }
        if !partial && p.name.is_none() && !e.iter().any(|f| f.field == "name") {
            e.push(FieldError::new("name", "is required"));
        }
        if partial && map.is_empty() {
            e.push(FieldError::new("body", "send at least one field to update"));
        }
        if e.is_empty() {
            Ok(p)
        } else {
            Err(AppError::validation_many(e))
        }
    }
}

pub async fn create(pool: &PgPool, client_id: ClientId, p: &ProductInput) -> AppResult<Product> {
    Ok(sqlx::query_as!(
        Product,
        r#"INSERT INTO products (id, client_id, name, description, image, price, currency, external_url,
                                 product_type, featured, status, sort_order)
           VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7, $8, $9, $10, $11, $12)
           RETURNING id AS "id: ProductId", name, description, image, price::text AS "price?",
               currency, external_url, product_type, featured, status AS "status: ProductStatus",
               sort_order, created_at, updated_at"#,
        ProductId::new_v7() as ProductId,
        client_id as ClientId,
        p.name.as_deref().unwrap_or_default(),
        p.description.as_deref().unwrap_or_default(),
        p.image.clone().flatten(),
        p.price.clone().flatten(),
        p.currency.as_deref().unwrap_or("USD"),
        p.external_url.clone().flatten(),
        p.product_type.clone().flatten(),
        p.featured.unwrap_or(false),
        p.status.unwrap_or(ProductStatus::Draft) as ProductStatus,
        p.sort_order.unwrap_or(0),
    )
    .fetch_one(pool)
    .await?)
}

pub async fn update(
    pool: &PgPool,
    client_id: ClientId,
    id: ProductId,
    p: &ProductInput,
) -> AppResult<Product> {
    let mut q: QueryBuilder<sqlx::Postgres> =
        QueryBuilder::new("UPDATE products SET updated_at = now()");
    if let Some(v) = &p.name {
        q.push(", name = ").push_bind(v.clone());
    }
    if let Some(v) = &p.description {
        q.push(", description = ").push_bind(v.clone());
    }
    if let Some(v) = &p.image {
        q.push(", image = ").push_bind(v.clone());
    }
    if let Some(v) = &p.price {
        q.push(", price = ").push_bind(v.clone()).push("::numeric");
    }
    if let Some(v) = &p.currency {
        q.push(", currency = ").push_bind(v.clone());
    }
    if let Some(v) = &p.external_url {
        q.push(", external_url = ").push_bind(v.clone());
    }
    if let Some(v) = &p.product_type {
        q.push(", product_type = ").push_bind(v.clone());
    }
    if let Some(v) = p.featured {
        q.push(", featured = ").push_bind(v);
    }
    if let Some(v) = p.status {
        q.push(", status = ").push_bind(v);
    }
    if let Some(v) = p.sort_order {
        q.push(", sort_order = ").push_bind(v);
    }
    q.push(" WHERE client_id = ").push_bind(client_id);
    q.push(" AND id = ").push_bind(id);
    q.push(" RETURNING ").push(COLUMNS);
    q.build_query_as::<Product>()
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| AppError::not_found("product"))
}

pub async fn delete(pool: &PgPool, client_id: ClientId, id: ProductId) -> AppResult<()> {
    let done = sqlx::query!(
        "DELETE FROM products WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as ProductId,
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("product"));
    }
    Ok(())
}

pub async fn get(
    pool: &PgPool,
    client_id: ClientId,
    id: ProductId,
    active_only: bool,
) -> AppResult<Product> {
    sqlx::query_as!(
        Product,
        r#"SELECT id AS "id: ProductId", name, description, image, price::text AS "price?", currency,
               external_url, product_type, featured, status AS "status: ProductStatus", sort_order,
               created_at, updated_at
           FROM products WHERE client_id = $1 AND id = $2 AND (NOT $3 OR status = 'active')"#,
        client_id as ClientId,
        id as ProductId,
        active_only,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("product"))
}

/// The seed's named sorts: the `ORDER BY` body of each (an allow-list, never request text).
pub fn parse_sort(raw: Option<&str>) -> AppResult<&'static str> {
    match raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("sort_order")
    {
        "newest" => Ok("created_at DESC, id DESC"),
        "oldest" => Ok("created_at ASC, id ASC"),
        "price_asc" => Ok("products.price ASC NULLS LAST, id"),
        "price_desc" => Ok("products.price DESC NULLS LAST, id"),
        "sort_order" => Ok("sort_order ASC, created_at DESC, id"),
        _ => Err(AppError::validation(
            "sort",
            "must be one of newest, oldest, price_asc, price_desc, sort_order",
        )),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<ProductStatus>,
    pub product_type: Option<String>,
    pub search: Option<String>,
    pub featured: Option<bool>,
}

/// The `status` filter: empty means not given; an unknown value is a 400 naming `status`.
pub fn parse_status(raw: Option<&str>) -> AppResult<Option<ProductStatus>> {
    ProductStatus::parse_param(raw, "status")
}

/// Appends the list filter: the client's products, narrowed by the filters that are given.
fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    client_id: ClientId,
    f: &ListFilter,
    search: Option<String>,
) {
    q.push(" WHERE client_id = ").push_bind(client_id);
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(product_type) = &f.product_type {
        q.push(" AND lower(product_type) = lower(")
            .push_bind(product_type.clone())
            .push(")");
    }
    if let Some(search) = search {
        q.push(" AND (name ILIKE ")
            .push_bind(search.clone())
            .push(" OR description ILIKE ")
            .push_bind(search)
            .push(")");
    }
    if let Some(featured) = f.featured {
        q.push(" AND featured = ").push_bind(featured);
    }
}

pub async fn list(
    pool: &PgPool,
    client_id: ClientId,
    f: &ListFilter,
    order_by: &'static str,
    page: Page,
) -> AppResult<(Vec<Product>, i64)> {
    let search = f.search.as_deref().map(like_pattern);
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM products");
    push_filter(&mut count, client_id, f, search.clone());
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(COLUMNS).push(" FROM products");
    push_filter(&mut q, client_id, f, search);
    // `order_by` is one of parse_sort's allow-listed clauses.
    q.push(" ORDER BY ").push(order_by);
    q.push(" LIMIT ").push_bind(page.limit_i64());
    q.push(" OFFSET ").push_bind(page.offset());
    let rows = q.build_query_as::<Product>().fetch_all(pool).await?;
    Ok((rows, total))
}

// A product type and how many active products have it. A plain comment: a doc comment would
// become the schema's description; the schema keeps the name it had as the API's own type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "portal_api.routes.products.TypeCount"))]
pub struct TypeCount {
    pub product_type: String,
    pub count: i64,
}

/// Product types of the client's active products, with counts.
pub async fn active_types(pool: &PgPool, client_id: ClientId) -> AppResult<Vec<TypeCount>> {
    Ok(sqlx::query_as!(
        TypeCount,
        r#"SELECT product_type AS "product_type!", count(*) AS "count!" FROM products
           WHERE client_id = $1 AND status = 'active' AND product_type IS NOT NULL
           GROUP BY product_type ORDER BY count(*) DESC, product_type"#,
        client_id as ClientId,
    )
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_needs_a_name_and_valid_fields() {
        let ok = ProductInput::parse(
            &json!({"name": "Protein", "price": "29.99", "currency": "EUR", "image": "https://x.example/a.jpg", "status": "active"}),
            false,
        )
        .unwrap();
        assert_eq!(ok.price, Some(Some("29.99".into())));
        let e = ProductInput::parse(
            &json!({"price": "29.999", "currency": "usd", "image": "javascript:alert(1)", "externalUrl": "/relative", "status": "live", "featured": "yes", "sortOrder": 1.5, "colour": "red"}),
            false,
        )
        .unwrap_err();
        let fields: Vec<String> = e.details().iter().map(|d| d.field.clone()).collect();
        for f in [
            "price",
            "currency",
            "image",
            "externalUrl",
            "status",
            "featured",
            "sortOrder",
            "colour",
            "name",
        ] {
            assert!(
                fields.contains(&f.to_string()),
                "{f} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn prices() {
        for ok in ["0", "29", "29.9", "29.99", "1234567890.00"] {
            assert!(price_ok(ok), "{ok}");
        }
        for bad in ["", "-1", "1.", ".5", "1.234", "1e3", "12345678901", "abc"] {
            assert!(!price_ok(bad), "{bad}");
        }
    }

    #[test]
    fn partial_updates_may_clear_nullable_fields() {
        let p = ProductInput::parse(&json!({"price": null, "image": null}), true).unwrap();
        assert_eq!(p.price, Some(None));
        assert_eq!(p.image, Some(None));
        assert!(ProductInput::parse(&json!({}), true).is_err());
        assert!(ProductInput::parse(&json!({"name": null}), true).is_err());
    }
}
