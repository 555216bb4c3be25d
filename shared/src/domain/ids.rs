//! Typed ids: one type per kind of row, so a member id cannot be passed where a client id is
//! expected. Each is its database value underneath (transparent for sqlx and serde) and is
//! documented in the OpenAPI schema as that value (a uuid, or an integer for vouchers).

use uuid::Uuid;

macro_rules! uuid_ids {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type, salvo_oapi::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[salvo(schema(inline))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

// Plain comments, not doc comments: a doc comment would become the description of every field
// that uses the type in the OpenAPI document.
uuid_ids!(
    // A partner (a client of the white-label app): the tenant.
    ClientId,
    // A member of a partner's programme (an app user).
    MemberId,
    // A partner staff account.
    StaffId,
    // An app-facing API key.
    ApiKeyId,
    // An affiliate product.
    ProductId,
    // An export job.
    ExportJobId,
    // An accepted batch of watch events (ties its receipts together across redeliveries).
    BatchId,
    // One generation of vouchers.
    VoucherBatchId,
    // A refresh-token family (one login and its rotations).
    FamilyId,
);

// A voucher (a Postgres identity column, so an integer). A plain comment, as above.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
    salvo_oapi::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[salvo(schema(inline))]
pub struct VoucherId(pub i64);

impl std::fmt::Display for VoucherId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<i64> for VoucherId {
    fn from(n: i64) -> Self {
        Self(n)
    }
}
