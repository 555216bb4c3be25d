//! What the OpenAPI document states beyond the `#[endpoint]` attributes: the enums of query values
//! (the sorts of vouchers, members and classes are built from the parsers' own allow-lists, and
//! the statuses from the shared closed sets, so they cannot drift apart), the patterns of stored
//! text, and the one rule attributes cannot state: an empty query value means "not given".

use portal_shared::pg::{classes, members, vouchers};
use salvo::oapi::schema::{AnyOf, Object, Schema};
use salvo::oapi::{BasicType, Components, KnownFormat, OpenApi, RefOr, SchemaFormat, ToSchema};

/// Text a field stores: no U+0000 (Postgres cannot hold it).
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// Stored text that must not be blank: no U+0000, and at least one character other than
/// whitespace (Unicode `White_Space`, the set Rust's `str::trim` removes).
/// `#[salvo(schema(pattern = …))]` needs literals, so both are repeated there.
pub const NOT_BLANK: &str = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";

fn one_of_strings(values: impl IntoIterator<Item = String>, description: &str) -> Schema {
    Schema::Object(Box::new(
        Object::new()
            .schema_type(BasicType::String)
            .enum_values(values)
            .description(description),
    ))
}

/// The wire names of a closed set, from the set itself (so the document cannot drift from it).
fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| name(*v).to_string()).collect()
}

/// `sort` of a list: each allowed field ascending, or descending with a leading `-`.
fn sort_schema(fields: &[(&str, &str)]) -> Schema {
    let values = fields
        .iter()
        .flat_map(|(f, _)| [f.to_string(), format!("-{f}")])
        .collect::<Vec<_>>();
    one_of_strings(values, "A field name; prefix `-` for descending.")
}

macro_rules! string_param {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl ToSchema for $name {
            fn to_schema(_: &mut Components) -> RefOr<Schema> {
                RefOr::Type($schema)
            }
        }
    };
}

string_param!(
    /// `sort` of `GET /partner/vouchers`.
    VoucherSort => sort_schema(vouchers::SORTS)
);
string_param!(
    /// `sort` of `GET /partner/members`.
    MemberSort => sort_schema(members::SORTS)
);
string_param!(
    /// `sort` of `GET /classes`.
    ClassSort => sort_schema(classes::SORTS)
);
string_param!(
    /// `sort` of the product lists (the seed's named orders).
    ProductSort => one_of_strings(
        ["newest", "oldest", "price_asc", "price_desc", "sort_order"].map(String::from),
        "Named order; default sort_order.",
    )
);
string_param!(
    /// A voucher's status, as lists filter and show it.
    VoucherStatus => one_of_strings(
        names(portal_shared::domain::status::VoucherStatus::ALL, |s| s.as_str()),
        "`expired` follows from `expiresAt` at read time.",
    )
);
string_param!(
    /// A member's status: `active` when they watched anything in the last 30 days.
    MemberStatus => one_of_strings(
        names(portal_shared::domain::status::MemberStatus::ALL, |s| s.as_str()),
        "Member status.",
    )
);
string_param!(
    /// A product's status.
    ProductStatus => one_of_strings(
        names(portal_shared::domain::status::ProductStatus::ALL, |s| s.as_str()),
        "Product status.",
    )
);
string_param!(
    /// `period` of the analytics.
    Period => one_of_strings(
        ["week", "month", "quarter"].map(String::from),
        "The last 7, 30 or 90 days including today.",
    )
);
string_param!(
    /// A boolean query value.
    Flag => one_of_strings(["true", "false"].map(String::from), "true or false.")
);
string_param!(
    /// A day (`YYYY-MM-DD`, the partner's timezone) or an RFC 3339 instant.
    DayOrInstant => Schema::AnyOf(
        AnyOf::new()
            .item(
                Object::new()
                    .schema_type(BasicType::String)
                    .format(SchemaFormat::KnownFormat(KnownFormat::Date)),
            )
            .item(
                Object::new()
                    .schema_type(BasicType::String)
                    .format(SchemaFormat::KnownFormat(KnownFormat::DateTime)),
            )
            .description("A day (YYYY-MM-DD, the partner's timezone) or an RFC 3339 instant."),
    )
);

/// Query parameters whose empty value the server refuses (paging); for every other optional query
/// parameter an empty value (`?status=`) means the same as leaving it out.
const EMPTY_REFUSED: &[&str] = &["page", "limit", "historyPage", "historyLimit"];

/// Applies the rules attributes cannot state to the generated document.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    use salvo::oapi::parameter::ParameterIn;
    use salvo::oapi::Required;
    for item in doc.paths.values_mut() {
        for op in item.operations.values_mut() {
            for p in op.parameters.iter_inline_mut() {
                if p.parameter_in == ParameterIn::Query
                    && p.required != Required::True
                    && !EMPTY_REFUSED.contains(&p.name.as_str())
                {
                    p.allow_empty_value = Some(true);
                }
            }
        }
    }
    doc
}
