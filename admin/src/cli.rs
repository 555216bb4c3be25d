//! Command-line syntax (clap derive). Values that need domain validation (ids, roles, JSON) are taken
//! as strings and checked by the commands, so a bad value is a one-line error with exit code 1.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ENVIRONMENT: &str = "\
Configuration (environment, or a .env file in the current directory):
  DATABASE_URL     postgres://user:password@host:5432/db     (required)
  REDIS_URL        redis://host:6379                          (required)
  CLICKHOUSE_URL   http://host:8123                           (required)
  JWT_SECRET       ≥ 32 bytes, ≥ 16 distinct characters       (required)
  CLICKHOUSE_DATABASE, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, REDIS_NAMESPACE  (optional)
Every command reads the whole configuration, so all required variables must be set even when a
command does not use a service.

Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.
With --json, stdout carries exactly one JSON object: the result, or {\"error\":{\"code\",\"message\"}}.
Warnings and error messages always go to stderr.";

#[derive(Debug, Parser)]
#[command(
    name = "portal-admin",
    version,
    about = "Partner Portal onboarding and operations",
    after_help = ENVIRONMENT,
    propagate_version = true
)]
pub struct Cli {
    /// Print exactly one JSON object on stdout (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending Postgres and ClickHouse migrations (idempotent).
    Migrate,
    /// Manage partners (clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the API keys that partners' mobile apps send as X-API-Key.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Manage partner staff accounts.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Manage the class catalogue (shared by all partners).
    #[command(subcommand)]
    Classes(ClassesCommand),
    /// Create (or reuse) a demo client with staff, classes and an API key. Safe to run repeatedly.
    #[command(name = "seed-demo")]
    SeedDemo(SeedDemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client. Prints its id.
    Create(ClientCreateArgs),
}

#[derive(Debug, Args)]
pub struct ClientCreateArgs {
    /// Display name, e.g. "Studio North".
    #[arg(long, allow_hyphen_values = true)]
    pub name: String,
    /// URL-safe identifier: a-z, 0-9 and '-', e.g. studio-north.
    #[arg(long, allow_hyphen_values = true)]
    pub slug: String,
    /// IANA timezone, e.g. Europe/Berlin.
    #[arg(long, allow_hyphen_values = true)]
    pub timezone: String,
    /// Branding as a JSON object, e.g. '{"primaryColor":"#0E7C86"}'.
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    pub branding: Option<String>,
    /// Feature flags as a JSON object, e.g. '{"vouchers":true}'.
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    pub features: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for a client. The plaintext key is shown once and never stored.
    Create {
        /// Client id (or slug).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client: String,
        /// A label to tell keys apart, e.g. "ios-app".
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        name: String,
    },
    /// Revoke a key. Running API instances are told at once (via Redis); otherwise they drop it
    /// within the cache TTL.
    Revoke {
        /// Key id (as printed by `api-key create` or `api-key list`).
        #[arg(value_name = "ID")]
        id: String,
    },
    /// List a client's keys (never the secrets).
    List {
        /// Client id (or slug).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        client: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account for a client. Prints its id.
    Create(StaffCreateArgs),
    /// Deactivate a staff account: its sessions end, and running API instances refuse its tokens
    /// at once (announced via Redis; otherwise within 10 s).
    Deactivate {
        /// Staff id or login email.
        #[arg(value_name = "ID|EMAIL", allow_hyphen_values = true)]
        staff: String,
    },
    /// Change a staff account's role; a demotion to viewer forbids its writes at once on running
    /// API instances (announced via Redis; otherwise within 10 s).
    #[command(name = "set-role")]
    SetRole {
        /// Staff id or login email.
        #[arg(value_name = "ID|EMAIL", allow_hyphen_values = true)]
        staff: String,
        /// admin (everything) or viewer (read only).
        #[arg(long, value_name = "admin|viewer", allow_hyphen_values = true)]
        role: String,
    },
}

#[derive(Debug, Args)]
pub struct StaffCreateArgs {
    /// Client id (or slug).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub client: String,
    /// Login email (unique across all clients).
    #[arg(long, allow_hyphen_values = true)]
    pub email: String,
    /// Password, at least 8 characters.
    #[arg(long, allow_hyphen_values = true)]
    pub password: String,
    /// admin (everything) or viewer (read only).
    #[arg(long, value_name = "admin|viewer", allow_hyphen_values = true)]
    pub role: String,
    /// Display name.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ClassesCommand {
    /// Insert or update classes from a CSV file with the header
    /// id,title,category,instructor,durationMinutes.
    Import {
        /// The CSV file.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SeedDemoArgs {
    /// Where the demo credentials (including the API key) are kept between runs.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "data/demo-credentials.json"
    )]
    pub credentials_file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_flag_is_global() {
        let cli =
            Cli::try_parse_from(["portal-admin", "api-key", "list", "--client", "x", "--json"])
                .unwrap();
        assert!(cli.json);
    }

    #[test]
    fn staff_changes_take_an_id_or_email() {
        let cli = Cli::try_parse_from([
            "portal-admin",
            "staff",
            "set-role",
            "a@x.example",
            "--role",
            "viewer",
        ])
        .unwrap();
        let Command::Staff(StaffCommand::SetRole { staff, role }) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!((staff.as_str(), role.as_str()), ("a@x.example", "viewer"));
        assert!(Cli::try_parse_from(["portal-admin", "staff", "set-role", "a@x.example"]).is_err());
        assert!(Cli::try_parse_from(["portal-admin", "staff", "deactivate"]).is_err());
    }

    #[test]
    fn values_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "portal-admin",
            "staff",
            "create",
            "--client",
            "c",
            "--email",
            "e@x.example",
            "--password",
            "-secret-",
            "--role",
            "admin",
        ])
        .unwrap();
        let Command::Staff(StaffCommand::Create(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.password, "-secret-");
    }
}
