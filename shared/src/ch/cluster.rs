//! Cluster mode (`CLICKHOUSE_CLUSTER`): the files under `clickhouse/` are written for one server;
//! on a cluster each statement is rewritten into its cluster form, so the same files (and their
//! checksums in the migration ledger) serve both modes:
//!
//! - `CREATE TABLE IF NOT EXISTS t (…) ENGINE = XMergeTree[(args)] …` becomes the local table
//!   `t_local`, `ReplicatedXMergeTree('/clickhouse/tables/{shard}/<db>/t_local', '{replica}'[,
//!   args])`, plus `t` itself as a `Distributed` table over it, sharded by
//!   `cityHash64(toString(client_id))`: every table carries `client_id`, so one partner's rows and
//!   aggregates live on one shard, and analysts keep the names they know.
//! - `CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT … FROM s …` becomes a view on every
//!   server from `s_local` into `t_local`: a view fires on the replica an insert reaches, and the
//!   target's replication carries its rows to the other replica.
//! - `INSERT INTO t SELECT …` runs as written, through the Distributed tables.
//!
//! Every `CREATE` runs `ON CLUSTER`, with names qualified by the database. Any other statement is
//! refused, so a future file cannot silently create a one-server object on a cluster.

/// A statement of a migration file, rewritten for `cluster`, database `db`.
pub fn rewrite(stmt: &str, cluster: &str, db: &str) -> Result<Vec<String>, String> {
    let s = stmt.trim();
    if let Some(rest) = strip_prefix_ci(s, "CREATE TABLE IF NOT EXISTS") {
        return create_table(rest, cluster, db);
    }
    if let Some(rest) = strip_prefix_ci(s, "CREATE MATERIALIZED VIEW IF NOT EXISTS") {
        return create_view(rest, cluster, db).map(|v| vec![v]);
    }
    if strip_prefix_ci(s, "INSERT INTO").is_some() {
        return Ok(vec![s.to_string()]);
    }
    Err(format!(
        "no cluster form for this statement (cluster mode knows CREATE TABLE IF NOT EXISTS, \
         CREATE MATERIALIZED VIEW IF NOT EXISTS … TO, INSERT INTO): {}",
        first_line(s)
    ))
}

/// The migration ledger on a cluster: one replicated table, all servers replicas of it.
pub fn ledger_table(cluster: &str, db: &str, table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} ({columns})
         ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{db}/{table}', '{{replica}}')
         ORDER BY version",
        columns = super::MIGRATIONS_COLUMNS
    )
}

/// The key Distributed tables shard by.
pub const SHARDING_KEY: &str = "cityHash64(toString(client_id))";

fn create_table(rest: &str, cluster: &str, db: &str) -> Result<Vec<String>, String> {
    let (name, rest) = ident(rest).ok_or("CREATE TABLE without a plain table name")?;
    let rest = rest.trim_start();
    if !rest.starts_with('(') {
        return Err(format!("CREATE TABLE {name}: expected its column list"));
    }
    let close = matching_paren(rest).ok_or_else(|| format!("CREATE TABLE {name}: unbalanced ("))?;
    let columns = &rest[..=close];
    let rest = rest[close + 1..].trim_start();
    let rest = strip_prefix_ci(rest, "ENGINE")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('='))
        .ok_or_else(|| format!("CREATE TABLE {name}: expected ENGINE = after the columns"))?;
    let (engine, rest) =
        ident(rest).ok_or_else(|| format!("CREATE TABLE {name}: expected an engine name"))?;
    if !engine.ends_with("MergeTree") || engine.starts_with("Replicated") {
        return Err(format!(
            "CREATE TABLE {name}: engine {engine} has no replicated form here"
        ));
    }
    let rest = rest.trim_start();
    let (args, tail) = if rest.starts_with('(') {
        let close =
            matching_paren(rest).ok_or_else(|| format!("CREATE TABLE {name}: unbalanced ("))?;
        let inner = rest[1..close].trim();
        (
            (!inner.is_empty()).then(|| inner.to_string()),
            &rest[close + 1..],
        )
    } else {
        (None, rest)
    };
    let local = format!("{name}_local");
    let args = args.map(|a| format!(", {a}")).unwrap_or_default();
    Ok(vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster} {columns} \
             ENGINE = Replicated{engine}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'{args}) {tail}",
            tail = tail.trim()
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER {cluster} AS {db}.{local} \
             ENGINE = Distributed({cluster}, {db}, {local}, {SHARDING_KEY})"
        ),
    ])
}

fn create_view(rest: &str, cluster: &str, db: &str) -> Result<String, String> {
    let (name, rest) = ident(rest).ok_or("CREATE MATERIALIZED VIEW without a plain name")?;
    let rest = strip_prefix_ci(rest.trim_start(), "TO").ok_or_else(|| {
        format!("materialized view {name}: only views with TO <table> have a cluster form")
    })?;
    let (target, rest) =
        ident(rest).ok_or_else(|| format!("materialized view {name}: expected TO <table>"))?;
    let select = strip_prefix_ci(rest.trim_start(), "AS")
        .ok_or_else(|| format!("materialized view {name}: expected AS SELECT"))?;
    let select = local_sources(select.trim_start(), db)
        .ok_or_else(|| format!("materialized view {name}: expected FROM <table>"))?;
    Ok(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name} ON CLUSTER {cluster} \
         TO {db}.{target}_local AS {select}"
    ))
}

/// `FROM t` → `FROM db.t_local` for every plain table after a FROM (word-wise, outside quotes —
/// the files' views have no quoted FROM).
fn local_sources(select: &str, db: &str) -> Option<String> {
    let mut out = String::with_capacity(select.len() + 32);
    let mut rest = select;
    let mut found = false;
    while let Some(pos) = find_word_ci(rest, "FROM") {
        out.push_str(&rest[..pos + 4]);
        let after = &rest[pos + 4..];
        let trimmed = after.trim_start();
        out.push_str(&after[..after.len() - trimmed.len()]);
        match ident(trimmed) {
            Some((t, tail)) => {
                out.push_str(&format!("{db}.{t}_local"));
                rest = tail;
                found = true;
            }
            None => rest = trimmed,
        }
    }
    out.push_str(rest);
    found.then_some(out)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let words: Vec<&str> = prefix.split_whitespace().collect();
    let mut rest = s;
    for w in words {
        let r = rest.trim_start();
        if r.len() < w.len() || !r[..w.len()].eq_ignore_ascii_case(w) {
            return None;
        }
        let after = &r[w.len()..];
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        rest = after;
    }
    Some(rest)
}

/// A plain identifier at the start of `s` (after spaces) and what follows it.
fn ident(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if end == 0 || s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    Some((&s[..end], &s[end..]))
}

/// The byte index of the `)` closing the `(` that `s` starts with.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn find_word_ci(s: &str, word: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let n = word.len();
    (0..s.len().saturating_sub(n - 1)).find(|&i| {
        s.is_char_boundary(i)
            && s.is_char_boundary(i + n)
            && s[i..i + n].eq_ignore_ascii_case(word)
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            && bytes
                .get(i + n)
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ch::{embedded, split_statements};

    #[test]
    fn tables_become_replicated_local_tables_and_distributed_tables() {
        let out = rewrite(
            "CREATE TABLE IF NOT EXISTS daily_class_stats (\n  client_id UUID,\n  views UInt64, s UInt64\n) \
             ENGINE = SummingMergeTree((views, s))\nPARTITION BY toYYYYMM(day)\nORDER BY (client_id, day)",
            "c1",
            "db",
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0]
            .starts_with("CREATE TABLE IF NOT EXISTS db.daily_class_stats_local ON CLUSTER c1 ("));
        assert!(out[0].contains(
            "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/db/daily_class_stats_local', '{replica}', (views, s)) PARTITION BY"
        ), "{}", out[0]);
        assert!(out[0].ends_with("ORDER BY (client_id, day)"));
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS db.daily_class_stats ON CLUSTER c1 AS db.daily_class_stats_local \
             ENGINE = Distributed(c1, db, daily_class_stats_local, cityHash64(toString(client_id)))"
        );
        let plain = rewrite(
            "create table if not exists t (client_id UUID) ENGINE = MergeTree ORDER BY client_id",
            "c",
            "d",
        )
        .unwrap();
        assert!(plain[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}') ORDER BY client_id"), "{}", plain[0]);
    }

    #[test]
    fn views_read_and_write_the_local_tables() {
        let out = rewrite(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS v_mv TO v AS\nSELECT client_id, toUInt64(count()) AS views\nFROM watch_events\nGROUP BY client_id",
            "c",
            "d",
        )
        .unwrap();
        assert_eq!(
            out,
            vec!["CREATE MATERIALIZED VIEW IF NOT EXISTS d.v_mv ON CLUSTER c TO d.v_local AS SELECT client_id, toUInt64(count()) AS views\nFROM d.watch_events_local\nGROUP BY client_id"]
        );
    }

    #[test]
    fn inserts_run_as_written_and_the_rest_is_refused() {
        let ins = "INSERT INTO t SELECT * FROM watch_events";
        assert_eq!(rewrite(ins, "c", "d").unwrap(), vec![ins.to_string()]);
        for s in [
            "ALTER TABLE watch_events ADD COLUMN x UInt8",
            "CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x",
            "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Log",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS v ENGINE = MergeTree ORDER BY x AS SELECT x FROM t",
        ] {
            assert!(rewrite(s, "c", "d").is_err(), "{s}");
        }
    }

    #[test]
    fn every_shipped_statement_has_a_cluster_form() {
        let mut tables = 0;
        for m in embedded().unwrap() {
            for stmt in split_statements(&m.sql) {
                let out = rewrite(&stmt, "c", "d")
                    .unwrap_or_else(|e| panic!("{} {}: {e}", m.version, m.name));
                tables += out.iter().filter(|s| s.contains("Distributed(")).count();
            }
        }
        assert_eq!(
            tables, 5,
            "watch_events, member_watch_history and three aggregates"
        );
    }
}
