//! The closed sets of values rows carry, decoded once where rows are read (from TEXT columns, or
//! computed) and written back as the same lower-case words. Each also parses a query value and
//! documents itself in the OpenAPI schema as a string enum (inline, like the ids).

use crate::error::{AppError, AppResult};

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize, sqlx::Type, salvo_oapi::ToSchema,
        )]
        #[serde(rename_all = "lowercase")]
        #[sqlx(type_name = "text", rename_all = "lowercase")]
        #[salvo(schema(inline))]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in the documented order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value as stored and served.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }

            /// The value named `word` exactly, if any.
            pub fn from_word(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == word)
            }

            /// A query value: absent or empty (after trimming) means not given; anything but one
            /// of the values is a 400 naming `field`.
            pub fn parse_param(raw: Option<&str>, field: &str) -> AppResult<Option<Self>> {
                match raw.map(str::trim).filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(s) => Self::from_word(s).map(Some).ok_or_else(|| {
                        AppError::validation(field, format!("must be one of {}", Self::words()))
                    }),
                }
            }

            /// `a, b, c`: the values for messages.
            pub fn words() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// Plain comments, not doc comments: a doc comment would become the description of every field
// that uses the type in the OpenAPI document.
word_enum!(
    // A voucher as the API shows it. The table stores active, redeemed or revoked; `expired` is an
    // active voucher whose `expires_at` has passed, computed at read time (the view
    // `vouchers_with_status`).
    VoucherStatus {
        Active = "active",
        Redeemed = "redeemed",
        Expired = "expired",
        Revoked = "revoked",
    }
);

word_enum!(
    // A product's publication state (CHECK constraint of `products.status`).
    ProductStatus {
        Draft = "draft",
        Active = "active",
        Archived = "archived",
    }
);

word_enum!(
    // A member's activity: `active` when they watched anything in the last 30 days (client's
    // timezone). Computed, not stored.
    MemberStatus {
        Active = "active",
        Inactive = "inactive",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_values_name_the_field() {
        for v in VoucherStatus::ALL {
            assert_eq!(VoucherStatus::from_word(v.as_str()), Some(*v));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::json!(v.as_str())
            );
        }
        assert_eq!(
            ProductStatus::parse_param(Some(" "), "status").unwrap(),
            None
        );
        assert_eq!(
            ProductStatus::parse_param(Some("draft"), "status").unwrap(),
            Some(ProductStatus::Draft)
        );
        let e = MemberStatus::parse_param(Some("Active"), "status").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.details()[0].field, "status");
    }
}
