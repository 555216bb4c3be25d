//! `GET /classes`, `GET /classes/{id}`: the class catalogue, for the app (X-API-Key).

use portal_shared::pg::classes;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::state;
use crate::params::Paging;

#[derive(Serialize, ToSchema)]
pub struct ClassList {
    pub classes: Vec<classes::Class>,
    pub pagination: PaginationDoc,
}

/// List the class catalogue, optionally by category (case-insensitive).
///
/// `sort`: `title`, `category` (default), `durationMinutes`; prefix `-` for descending.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
        ("category" = Option<String>, Query, pattern = "^[^\\u0000]*$", description = "Case-insensitive"),
        ("sort" = Option<crate::doc::ClassSort>, Query),
    )
)]
pub async fn list(
    paging: Paging<100>,
    category: QueryParam<String, false>,
    sort: QueryParam<String, false>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ClassList>>> {
    let st = state(depot).clone();
    let p = paging.0;
    let category = crate::params::text(category.as_deref(), "category", None)?;
    let sort = classes::parse_sort(sort.as_deref())?;
    let (rows, total) = classes::list(&st.db, category.as_deref(), sort, p).await?;
    Ok(ok(ClassList {
        classes: rows,
        pagination: p.pagination(total).into(),
    }))
}

/// One class of the catalogue.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    status_codes(200, 401, 404, 503),
    parameters(("id" = String, Path, description = "The catalogue's id, e.g. yoga-flow-1"))
)]
pub async fn get(
    id: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<classes::Class>>> {
    let st = state(depot).clone();
    Ok(ok(classes::get(&st.db, &id).await?))
}
