//! The success envelope of SPEC §4: `{"success": true, "data": …}`.

use portal_shared::domain::pagination::Pagination;
use salvo::oapi::ToSchema;
use salvo::prelude::Json;
use serde::Serialize;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T: ToSchema + 'static> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

pub fn ok<T: ToSchema + 'static>(data: T) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        data,
    })
}

/// `pagination` next to a list's items.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "Pagination"))]
pub struct PaginationDoc {
    pub page: u32,
    pub limit: u32,
    pub total: i64,
    pub total_pages: i64,
}

impl From<Pagination> for PaginationDoc {
    fn from(p: Pagination) -> Self {
        Self {
            page: p.page,
            limit: p.limit,
            total: p.total,
            total_pages: p.total_pages,
        }
    }
}
