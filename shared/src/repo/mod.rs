//! Queries, one module per resource. Tenant-owned lookups take `client_id` first.

pub mod api_keys;
pub mod audit;
pub mod classes;
pub mod clients;
pub mod idempotency;
pub mod members;
pub mod products;
pub mod sessions;
pub mod staff;
pub mod strings;
pub mod unscoped;
pub mod vouchers;

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    /// Rows that carry a password hash, a key or a token print without it.
    #[test]
    fn rows_carrying_secrets_redact_them_in_debug() {
        const SECRET: &str = "$argon2id$v=19$SECRET-VALUE";
        let staff = super::staff::StaffRow {
            id: Uuid::nil(),
            client_id: Uuid::nil(),
            email: "a@b.example".into(),
            name: "A".into(),
            password_hash: SECRET.into(),
            role: crate::auth::Role::Admin,
            active: true,
            created_at: Utc::now(),
            last_login_at: None,
        };
        let member = super::members::LoginRow {
            member: super::members::MemberRow {
                id: Uuid::nil(),
                client_id: Uuid::nil(),
                email: "m@b.example".into(),
                name: "M".into(),
                registered_at: Utc::now(),
                voucher_code: None,
                first_active_at: None,
                last_active_at: None,
                watch_seconds: 0,
                class_views: 0,
                active_days: 0,
                favorite_category: None,
            },
            password_hash: SECRET.into(),
        };
        let rotated = super::sessions::Rotated {
            client_id: Uuid::nil(),
            subject: super::sessions::Subject::Staff(Uuid::nil()),
            family_id: Uuid::nil(),
            refresh_token: SECRET.into(),
        };
        let key = super::api_keys::CreatedKey {
            id: Uuid::nil(),
            client_id: Uuid::nil(),
            prefix: "ppk_abcd".into(),
            key: SECRET.into(),
        };
        for shown in [
            format!("{staff:?}"),
            format!("{member:?}"),
            format!("{rotated:?}"),
            format!("{key:?}"),
        ] {
            assert!(!shown.contains("SECRET-VALUE"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(format!("{staff:?}").contains("a@b.example"));
    }
}
