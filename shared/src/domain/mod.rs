//! Domain types and rules with no I/O: credentials and roles, list parameters, JSON input rules.

pub mod active_days;
pub mod auth;
pub mod ids;
pub mod json;
pub mod month;
pub mod pagination;
pub mod status;

/// Whole minutes from seconds: round half up, applied once to the sum (SPEC §4 units).
pub fn minutes(seconds: i64) -> i64 {
    (seconds.max(0) + 30) / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_half_up_once() {
        assert_eq!(minutes(0), 0);
        assert_eq!(minutes(29), 0);
        assert_eq!(minutes(30), 1);
        assert_eq!(minutes(89), 1);
        assert_eq!(minutes(90), 2);
    }
}
