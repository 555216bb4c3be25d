//! Reading JSON values the way JSON Schema (and so the OpenAPI document) defines them.

use serde_json::Value;

use crate::error::AppResult;

/// A request body read from its JSON value with every field's problem reported at once (serde
/// stops at the first), so a caller fixes a form in one round. The API's `Body<T>` extractor reads
/// a body with it, and the type's own `ToSchema` documents it.
pub trait FromJson: Sized {
    fn from_json(body: &Value) -> AppResult<Self>;
}

/// An `integer` in the JSON Schema sense: any number without a fractional part, so `427`, `427.0`
/// and `4.27e2` are all 427. JSON itself does not tell integers from other numbers.
pub fn whole_number(v: &Value) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: beyond it an f64 is not an exact integer
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_in_any_spelling() {
        assert_eq!(whole_number(&json!(427)), Some(427));
        assert_eq!(whole_number(&json!(427.0)), Some(427));
        assert_eq!(
            whole_number(&serde_json::from_str("4.27e2").unwrap()),
            Some(427)
        );
        assert_eq!(whole_number(&json!(-3.0)), Some(-3));
        for not in [
            json!(427.5),
            json!("427"),
            json!(null),
            json!(true),
            json!(1e300),
        ] {
            assert_eq!(whole_number(&not), None, "{not}");
        }
    }
}
