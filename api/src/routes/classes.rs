//! `GET /classes`, `GET /classes/{id}`: the class catalogue, for the app (X-API-Key).

use portal_shared::pg::classes;
use salvo::oapi::extract::PathParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::state;
use crate::params::{FromQuery, Paging, Query, QueryReader, Reported};
use portal_shared::domain::pagination::{Page, Sort};

#[derive(Serialize, ToSchema)]
pub struct ClassList {
    pub classes: Vec<classes::Class>,
    pub pagination: PaginationDoc,
}

/// The query of `GET /classes`.
pub struct ClassQuery {
    category: Option<String>,
    sort: Sort,
    page: Page,
}

impl FromQuery for ClassQuery {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported> {
        let category = q.parse("category", |v| crate::params::text(v, "category", None));
        let sort = q.parse("sort", classes::parse_sort);
        let page = q.page(100);
        Ok(Self {
            category: category?,
            sort: sort?,
            page: page?,
        })
    }

    fn document(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation) {
        <Paging<100> as salvo::oapi::EndpointArgRegister>::register(c, op, "");
    }
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
    query: Query<ClassQuery>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ClassList>>> {
    let st = state(depot).clone();
    let ClassQuery {
        category,
        sort,
        page: p,
    } = query.0;
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
