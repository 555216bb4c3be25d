//! How a queued batch carries its events: one string of fixed-layout records instead of an
//! array of JSON objects. A batch of 100 events takes about 6 KB instead of 14.6 KB, so Redis
//! copies less at every push and fetch (its queue scripts copy each job's data through Lua), and
//! the API and the workers format and parse no UUID, timestamp or field name per event.
//!
//! The string is standard base64 of: the layout's version byte ([`VERSION`]), then per event
//! the event id (16 bytes), `started_at` as seconds (i64) and nanoseconds (u32) since the Unix
//! epoch, `watched_seconds` (u32), and the class id's length (u16) and bytes; integers
//! little-endian. A batch queued as an array of event objects (by an earlier release) is read
//! too, so workers of this release drain what earlier APIs queued; deploy the workers before the
//! APIs (docs/OPERATIONS.md).

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};
use uuid::Uuid;

use super::WatchEvent;

/// The first byte of every packed string: the record layout described above.
pub const VERSION: u8 = 1;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Bytes of one record before its class id.
const FIXED: usize = 16 + 8 + 4 + 4 + 2;

pub fn serialize<S: Serializer>(events: &[WatchEvent], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&pack(events).map_err(serde::ser::Error::custom)?)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WatchEvent>, D::Error> {
    d.deserialize_any(EventsVisitor)
}

/// The packed string of `events`; `Err` for a class id longer than 65,535 bytes (the catalogue
/// allows 128).
pub fn pack(events: &[WatchEvent]) -> Result<String, String> {
    let size = 1 + events
        .iter()
        .map(|e| FIXED + e.class_id.len())
        .sum::<usize>();
    let mut raw = Vec::with_capacity(size);
    raw.push(VERSION);
    for e in events {
        let class = e.class_id.as_bytes();
        let len = u16::try_from(class.len())
            .map_err(|_| format!("class id of {} bytes cannot be packed", class.len()))?;
        raw.extend_from_slice(e.event_id.as_bytes());
        raw.extend_from_slice(&e.started_at.timestamp().to_le_bytes());
        raw.extend_from_slice(&e.started_at.timestamp_subsec_nanos().to_le_bytes());
        raw.extend_from_slice(&e.watched_seconds.to_le_bytes());
        raw.extend_from_slice(&len.to_le_bytes());
        raw.extend_from_slice(class);
    }
    Ok(B64.encode(raw))
}

/// The events of a packed string; `Err` says what is wrong with it.
pub fn unpack(packed: &str) -> Result<Vec<WatchEvent>, String> {
    let raw = B64
        .decode(packed)
        .map_err(|e| format!("packed events are not base64: {e}"))?;
    let (&version, mut rest) = raw.split_first().ok_or("packed events are empty")?;
    if version != VERSION {
        return Err(format!(
            "packed events have layout {version}; this release reads {VERSION}"
        ));
    }
    let mut events = Vec::with_capacity(rest.len() / (FIXED + 12));
    while !rest.is_empty() {
        let i = events.len();
        let fixed = take(&mut rest, FIXED, i)?;
        let secs = i64::from_le_bytes(at(fixed, 16));
        let nanos = u32::from_le_bytes(at(fixed, 24));
        let watched_seconds = u32::from_le_bytes(at(fixed, 28));
        let len = u16::from_le_bytes(at(fixed, 32)) as usize;
        let class = take(&mut rest, len, i)?;
        let started_at = DateTime::<Utc>::from_timestamp(secs, nanos)
            .ok_or_else(|| format!("packed event {i} has no valid start time"))?;
        let class_id = std::str::from_utf8(class)
            .map_err(|_| format!("packed event {i} has a class id that is not UTF-8"))?;
        events.push(WatchEvent {
            event_id: Uuid::from_bytes(at(fixed, 0)),
            class_id: class_id.to_owned(),
            started_at,
            watched_seconds,
        });
    }
    Ok(events)
}

/// The `N` bytes of a record's fixed part from `offset`.
fn at<const N: usize>(fixed: &[u8], offset: usize) -> [u8; N] {
    fixed[offset..offset + N]
        .try_into()
        .expect("within the fixed part")
}

/// The next `n` bytes of `rest` (of event `i`).
fn take<'a>(rest: &mut &'a [u8], n: usize, i: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err(format!("packed event {i} is cut short"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

struct EventsVisitor;

impl<'de> Visitor<'de> for EventsVisitor {
    type Value = Vec<WatchEvent>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("packed events (a string) or an array of events")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        unpack(v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(e) = seq.next_element::<WatchEvent>()? {
            events.push(e);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{BatchId, ClientId, MemberId};
    use crate::pipeline::WatchBatch;
    use chrono::TimeZone;

    fn events() -> Vec<WatchEvent> {
        vec![
            WatchEvent {
                event_id: Uuid::new_v4(),
                class_id: "yoga-flow-1".into(),
                started_at: Utc.with_ymd_and_hms(2026, 11, 30, 7, 15, 2).unwrap()
                    + chrono::Duration::nanoseconds(123_456_789),
                watched_seconds: 1_800,
            },
            WatchEvent {
                event_id: Uuid::nil(),
                class_id: "é.".repeat(42) + "x",
                started_at: DateTime::<Utc>::from_timestamp(-1, 999_999_999).unwrap(),
                watched_seconds: u32::MAX,
            },
        ]
    }

    #[test]
    fn events_survive_packing_exactly() {
        let e = events();
        assert_eq!(unpack(&pack(&e).unwrap()).unwrap(), e);
        assert_eq!(unpack(&pack(&[]).unwrap()).unwrap(), vec![]);
    }

    fn batch() -> WatchBatch {
        WatchBatch {
            batch_id: BatchId::new_v7(),
            client_id: ClientId::new_v7(),
            member_id: MemberId::new_v7(),
            received_at: Utc::now(),
            events: events(),
            seen_before: false,
        }
    }

    #[test]
    fn a_batch_queues_its_events_packed_and_reads_the_array_of_earlier_releases() {
        let batch = batch();
        let json = serde_json::to_value(&batch).unwrap();
        assert!(json["events"].is_string(), "{json}");
        assert_eq!(serde_json::from_value::<WatchBatch>(json).unwrap(), batch);

        // What an earlier release queued: the events as objects.
        let mut old = serde_json::to_value(&batch).unwrap();
        old["events"] = serde_json::to_value(&batch.events).unwrap();
        assert!(old["events"][1]["class_id"].is_string(), "{old}");
        assert_eq!(serde_json::from_value::<WatchBatch>(old).unwrap(), batch);
    }

    #[test]
    fn a_class_id_too_long_to_pack_is_an_error_not_a_panic() {
        let mut b = batch();
        b.events[0].class_id = "x".repeat(70_000);
        let e = serde_json::to_value(&b).unwrap_err();
        assert!(e.to_string().contains("cannot be packed"), "{e}");
    }

    #[test]
    fn damaged_packings_are_refused_with_the_reason() {
        let good = pack(&events()).unwrap();
        let raw = B64.decode(&good).unwrap();
        let cut = B64.encode(&raw[..raw.len() - 1]);
        assert!(unpack(&cut).unwrap_err().contains("cut short"));
        let mut later = raw.clone();
        later[0] = VERSION + 1;
        assert!(unpack(&B64.encode(&later)).unwrap_err().contains("layout"));
        assert!(unpack("not base64!").unwrap_err().contains("base64"));
        assert!(unpack("").unwrap_err().contains("empty"));
        let mut batch = serde_json::to_value(batch()).unwrap();
        batch["events"] = serde_json::json!(7);
        let e = serde_json::from_value::<WatchBatch>(batch).unwrap_err();
        assert!(
            e.to_string()
                .contains("packed events (a string) or an array"),
            "{e}"
        );
    }
}
