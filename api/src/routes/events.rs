//! `POST /app/events` (X-API-Key + member token): watch events, one or a batch of up to 500.

use chrono::Utc;
use portal_shared::pipeline::{self, WatchBatch};
use portal_shared::throttle;
use salvo::extract::{Extractible, Metadata};
use salvo::oapi::{
    Components, Content, EndpointArgRegister, Operation, RequestBody, Required, ToSchema,
};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::body::BodyError;
use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{member, rate_headers, state};
use portal_shared::domain::ids::BatchId;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventIn {
    /// The app's own id for this view (UUID): the idempotency key.
    pub event_id: Uuid,
    /// A class id of the catalogue.
    pub class_id: String,
    /// RFC 3339; at most 30 days ago and not in the future.
    #[salvo(schema(format = DateTime))]
    pub started_at: String,
    /// 1 to 86400, and at most the time since `startedAt` plus 60 s and 4 × the class's
    /// duration.
    #[salvo(schema(minimum = 1, maximum = 86400))]
    pub watched_seconds: u32,
}

#[derive(Deserialize, ToSchema)]
#[salvo(schema(example = json!({"events": [{"eventId": "0b6f7c1e-8d0a-4c1e-9d5e-2f1a3b4c5d6e", "classId": "yoga-flow-1", "startedAt": "2026-11-25T07:30:00Z", "watchedSeconds": 1200}]})))]
pub struct EventsIn {
    /// 1 to 500 events.
    #[salvo(schema(min_items = 1, max_items = 500))]
    pub events: Vec<EventIn>,
}

#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// Events queued to be counted.
    pub accepted: usize,
    /// Events whose `eventId` was already received (in this batch or before): not counted again.
    pub duplicates: usize,
}

/// The body of `POST /app/events`. A well-formed batch is read straight into its types
/// ([`pipeline::TypedBatch`]: no JSON tree; a batch of 100 events is read in about 23 µs
/// instead of 39); any other body is read as JSON, exactly as before, so that
/// [`pipeline::validate_batch`] can name every invalid event. A body that is not JSON at all is
/// refused by salvo's parser, as every other route's is.
pub enum EventsBody {
    Typed(pipeline::TypedBatch, bytes::Bytes),
    Json(serde_json::Value),
}

impl<'ex> Extractible<'ex> for EventsBody {
    fn metadata() -> &'static Metadata {
        static METADATA: Metadata = Metadata::new("");
        &METADATA
    }

    #[allow(refining_impl_trait)]
    async fn extract(req: &'ex mut Request, _depot: &'ex mut Depot) -> Result<Self, BodyError> {
        if let Ok(batch) = req.parse_json::<pipeline::TypedBatch>().await {
            let payload = req.payload().await.map_err(BodyError::Parse)?.clone();
            return Ok(EventsBody::Typed(batch, payload));
        }
        let raw: serde_json::Value = req.parse_json().await.map_err(BodyError::Parse)?;
        Ok(EventsBody::Json(raw))
    }
}

/// Documented as [`EventsIn`], the shape of a valid batch.
impl EndpointArgRegister for EventsBody {
    fn register(components: &mut Components, operation: &mut Operation, _arg: &str) {
        let schema = EventsIn::to_schema(components);
        operation.request_body = Some(
            RequestBody::new()
                .description("A batch of 1 to 500 watch events.")
                .add_content("application/json", Content::new(schema))
                .required(Required::True),
        );
    }
}

impl EventsBody {
    /// The batch's unique events and in-batch repeats, or every invalid event named.
    fn validate(
        self,
        classes: &std::collections::HashMap<String, portal_shared::pg::classes::ClassInfo>,
        now: chrono::DateTime<Utc>,
    ) -> portal_shared::error::AppResult<(Vec<pipeline::WatchEvent>, usize)> {
        match self {
            EventsBody::Typed(batch, payload) => {
                match pipeline::validate_typed(batch, classes, now) {
                    Some(valid) => Ok(valid),
                    // Read again as JSON (it is JSON: it was just read) for the report.
                    None => pipeline::validate_batch(
                        &serde_json::from_slice(&payload).unwrap_or_default(),
                        classes,
                        now,
                    ),
                }
            }
            EventsBody::Json(raw) => pipeline::validate_batch(&raw, classes, now),
        }
    }
}

/// Record watch events. The batch is accepted whole (202, once durably queued) or rejected whole
/// with each invalid event's index and reason. `eventId` makes retries safe. 503 with
/// `Retry-After` when the queue is unreachable: never a 202 for a lost event. A member may send
/// `MEMBER_EVENTS_PER_MINUTE` events a minute (default 1,000): a batch that would go over answers
/// 429 with `Retry-After` and is not queued (nor counted against the limit). Send fewer, larger
/// batches where the app can (up to 500 events): much of a request's cost does not depend on its
/// size.
#[endpoint(
    tags("app"),
    security(("api_key" = [], "member_bearer" = [])),
    status_codes(202, 400, 401, 413, 429, 503),
    responses((status_code = 202, description = "Queued", body = Envelope<Accepted>))
)]
pub async fn ingest(
    body: EventsBody,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<Accepted>>> {
    let st = state(depot).clone();
    let m = member(depot)?;
    let catalogue = st.catalogue.get(&st.db).await?;
    let now = Utc::now();
    let (unique, in_batch_dups) = body.validate(&catalogue, now)?;
    let ids: Vec<Uuid> = unique.iter().map(|e| e.event_id).collect();
    // Only the events the seen-events filter may have met before are looked up in the ledger
    // (all of them while the filter is incomplete, off or away).
    let maybe_seen = match st.seen.check_and_add(m.client_id, &ids).await {
        Ok(Some(flags)) => ids
            .iter()
            .zip(flags)
            .filter_map(|(id, maybe)| maybe.then_some(*id))
            .collect(),
        Ok(None) => ids,
        Err(e) => {
            tracing::debug!(error = %e, "seen-events filter unavailable; looking every event up");
            ids
        }
    };
    metrics::counter!("portal_events_ledger_lookups_total").increment(maybe_seen.len() as u64);
    let seen_before = if maybe_seen.is_empty() {
        0
    } else {
        portal_shared::pg::receipts::already_received(&st.db, m.client_id, &maybe_seen).await?
    };
    let accepted = unique.len() - seen_before.min(unique.len());
    let batch = WatchBatch {
        batch_id: BatchId::new_v7(),
        client_id: m.client_id,
        member_id: m.member_id,
        received_at: now,
        events: unique,
        seen_before: seen_before > 0,
    };
    // Every event sent counts against the member's minute, repeated ones too.
    let charged = match st.config.member_events_per_minute {
        0 => None,
        per_minute => {
            let limit = throttle::member_events(per_minute);
            let subject = m.member_id.to_string();
            let n = (batch.events.len() + in_batch_dups) as u32;
            let w = st.throttle.hit_n(&limit, &subject, n).await?;
            rate_headers(res, &w);
            if w.over() {
                metrics::counter!("portal_events_throttled_total").increment(u64::from(n));
                return Err(w
                    .into_error("too many watch events from this member; try again later")
                    .into());
            }
            Some((limit, subject, n))
        }
    };
    if let Err(e) = st.events.enqueue(batch).await {
        if let Some((limit, subject, n)) = charged {
            // Nothing was queued: the member may send these again. (Redis is likely away too.)
            let _ = st.throttle.give_back(&[(&limit, &subject)], n).await;
        }
        return Err(e.into());
    }
    metrics::counter!("portal_events_ingested_total").increment(accepted as u64);
    res.status_code(StatusCode::ACCEPTED);
    Ok(ok(Accepted {
        accepted,
        duplicates: in_batch_dups + seen_before,
    }))
}
