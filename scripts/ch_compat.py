"""Every statement under clickhouse/ and every example query of clickhouse/README.md, run on the
ClickHouse 18.16 server the product uses (over HTTP) and on a current engine (chDB, ClickHouse
26.x in-process), on the same small data set: the answers must be equal, and must not be empty.

    python scripts/ch_compat.py --clickhouse-url http://127.0.0.1:8123

Run by scripts/ch-compat.sh (which installs chDB) from scripts/test.sh. Exit status 0 only when
every statement ran on both engines and every answer agreed. The 18.16 database it creates
(`portal_compat_<pid>`) is dropped at the end.
"""

import argparse
import datetime as dt
import os
import random
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CH_DIR = ROOT / "clickhouse"

# The ids the README's examples name: the data set must contain them, or those examples would
# compare two empty answers.
README_CLIENT = "01a212bf-0aca-743e-b263-3e36ed0b7418"
README_MEMBER = "01a212c0-1111-7000-8000-000000000001"


def split_statements(sql: str) -> list[str]:
    """`;` ends a statement unless inside quotes or a `--` comment (as shared/src/ch/mod.rs)."""
    out, cur, quote, i = [], [], None, 0
    while i < len(sql):
        c = sql[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(sql):
                cur.append(sql[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"`":
            quote = c
            cur.append(c)
        elif c == "-" and sql[i + 1 : i + 2] == "-":
            j = sql.find("\n", i)
            i = len(sql) if j < 0 else j
            cur.append("\n")
        elif c == ";":
            if "".join(cur).strip():
                out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def migration_files() -> list[Path]:
    files = sorted(p for p in CH_DIR.glob("*.sql") if re.match(r"^\d+_", p.name))
    if not files:
        sys.exit(f"no migration files under {CH_DIR}")
    return files


def readme_queries() -> list[str]:
    text = (CH_DIR / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    queries = [q for b in blocks for q in split_statements(b)]
    if not queries:
        sys.exit("no example queries found in clickhouse/README.md")
    return queries


class Old:
    """The 18.16 server, over HTTP, in a database of its own."""

    settings: dict = {}

    def __init__(self, url: str, database: str):
        self.url, self.database = url.rstrip("/"), database
        self.run(f"CREATE DATABASE {database}", db=False)

    def run(self, sql: str, db: bool = True) -> str:
        params = {"database": self.database, **self.settings} if db else {}
        req = urllib.request.Request(
            f"{self.url}/?{urllib.parse.urlencode(params)}", data=sql.encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(e.read().decode().strip()) from None

    def close(self):
        self.run(f"DROP DATABASE IF EXISTS {self.database}", db=False)


class Clustered(Old):
    """A database on a ClickHouse cluster, migrated beforehand by `portal-admin migrate` with
    CLICKHOUSE_CLUSTER set: the names analysts use are Distributed tables. Inserts are synchronous
    with a quorum of 2, as the worker's."""

    settings = {"insert_distributed_sync": "1", "insert_quorum": "2", "load_balancing": "in_order"}

    def __init__(self, url: str, database: str):
        self.url, self.database = url.rstrip("/"), database

    def close(self):
        pass


class New:
    """chDB: the current engine in this process, in a temporary folder."""

    def __init__(self, database: str):
        from chdb import session

        self.path = tempfile.mkdtemp(prefix="portal-chdb-")
        self.session = session.Session(self.path)
        self.session.query(f"CREATE DATABASE {database}")
        self.session.query(f"USE {database}")

    def run(self, sql: str) -> str:
        res = self.session.query(sql, "TabSeparated")
        return res.bytes().decode() if hasattr(res, "bytes") else str(res)

    def close(self):
        self.session.close()
        shutil.rmtree(self.path, ignore_errors=True)


def version(engine) -> str:
    return engine.run("SELECT version()").strip()


def events(seed: int, count: int, today: dt.date) -> list[tuple]:
    """Watch events for three partners (one of them the README's), members with skewed activity,
    days in November 2026 (the README's fixed month) and in the last 120 days."""
    rng = random.Random(seed)
    clients = [README_CLIENT, str(uuid.UUID(int=rng.getrandbits(128))), str(uuid.UUID(int=rng.getrandbits(128)))]
    members = {c: [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(12)] for c in clients}
    members[README_CLIENT][0] = README_MEMBER
    categories = ["yoga", "strength", "cardio", "pilates", "mobility"]
    out = []
    for _ in range(count):
        client = rng.choice(clients)
        member = members[client][min(int(rng.paretovariate(1.2)) - 1, 11)]
        if rng.random() < 0.4:
            day = dt.date(2026, 11, 1) + dt.timedelta(days=rng.randrange(30))
        else:
            day = today - dt.timedelta(days=rng.randrange(120))
        started = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60)))
        category = rng.choice(categories)
        out.append(
            (
                client,
                str(uuid.UUID(int=rng.getrandbits(128))),
                member,
                f"{category}-{rng.randrange(1, 6)}",
                category,
                started.strftime("%Y-%m-%d %H:%M:%S"),
                day.isoformat(),
                rng.randrange(1, 3600),
                (started + dt.timedelta(seconds=rng.randrange(1, 600))).strftime("%Y-%m-%d %H:%M:%S"),
            )
        )
    return out


def insert(rows: list[tuple]) -> str:
    values = ",".join(
        "('{}','{}','{}','{}','{}','{}','{}',{},'{}')".format(*r) for r in rows
    )
    return (
        "INSERT INTO watch_events (client_id, event_id, member_id, class_id, category, started_at,"
        " local_date, watched_seconds, received_at) VALUES " + values
    )


# The contents of every table, read so that unmerged parts cannot change the answer.
TABLE_CHECKS = {
    "watch_events": "SELECT * FROM watch_events ORDER BY client_id, event_id",
    "member_watch_history": "SELECT * FROM member_watch_history ORDER BY client_id, event_id",
    "daily_class_stats": "SELECT client_id, day, category, class_id, sum(views), sum(watched_seconds)"
    " FROM daily_class_stats GROUP BY client_id, day, category, class_id"
    " ORDER BY client_id, day, category, class_id",
    "daily_member_stats": "SELECT client_id, day, member_id, sum(views), sum(watched_seconds)"
    " FROM daily_member_stats GROUP BY client_id, day, member_id ORDER BY client_id, day, member_id",
    "daily_active_members": "SELECT client_id, day, uniqExactMerge(members) FROM daily_active_members"
    " GROUP BY client_id, day ORDER BY client_id, day",
}

# Each aggregate table against the same figure computed straight from watch_events.
CONSISTENCY = {
    "daily_class_stats": "SELECT client_id, local_date, category, class_id, count(), sum(watched_seconds)"
    " FROM watch_events GROUP BY client_id, local_date, category, class_id"
    " ORDER BY client_id, local_date, category, class_id",
    "daily_member_stats": "SELECT client_id, local_date, member_id, count(), sum(watched_seconds)"
    " FROM watch_events GROUP BY client_id, local_date, member_id ORDER BY client_id, local_date, member_id",
    "daily_active_members": "SELECT client_id, local_date, uniqExact(member_id) FROM watch_events"
    " GROUP BY client_id, local_date ORDER BY client_id, local_date",
}


def compare_once(url: str) -> tuple[int, list[str], str]:
    """One full run on both engines. Returns (checks passed, failures, the day it ran on)."""
    database = f"portal_compat_{os.getpid()}"
    old, new = Old(url, database), New(database)
    failures, passed = [], 0
    try:
        print(f"ClickHouse {version(old)} (server) and {version(new)} (chDB)")
        today = dt.date.fromisoformat(old.run("SELECT toString(today())").strip())
        rows = events(20261201, 2000, today)
        # Half the events exist before the later files are applied (a later file may backfill from
        # what is stored), the rest after.
        files = migration_files()
        first, rest = files[:1], files[1:]
        for phase, batch in ((first, rows[:1000]), (rest, rows[1000:])):
            for f in phase:
                for stmt in split_statements(f.read_text()):
                    for name, engine in (("18.16", old), ("current", new)):
                        try:
                            engine.run(stmt)
                        except Exception as e:  # noqa: BLE001 - report and go on
                            failures.append(f"{f.name} on {name}: {e}\n    {stmt[:200]}")
                    passed += 1
            for engine in (old, new):
                engine.run(insert(batch))
        if failures:
            return passed, failures, today.isoformat()

        def both(label: str, sql: str, nonempty: bool = True):
            nonlocal passed
            try:
                a, b = old.run(sql), new.run(sql)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{label}: {e}\n    {sql}")
                return None
            if a != b:
                failures.append(f"{label}: answers differ\n    {sql}\n  18.16:\n{a[:800]}\n  current:\n{b[:800]}")
            elif nonempty and not a.strip():
                failures.append(f"{label}: empty answer on both engines (the data set misses it)\n    {sql}")
            else:
                passed += 1
            return a

        for table, sql in TABLE_CHECKS.items():
            both(f"table {table}", sql)
        for table, sql in CONSISTENCY.items():
            direct = both(f"{table} computed from watch_events", sql)
            stored = old.run(TABLE_CHECKS[table])
            if direct is not None and direct != stored:
                failures.append(f"{table} does not agree with watch_events")
        for i, q in enumerate(readme_queries(), 1):
            both(f"README example {i}", q)
        return passed, failures, today.isoformat()
    finally:
        old.close()
        new.close()


def compare_cluster(url: str, cluster_url: str, cluster_db: str) -> tuple[int, list[str], str]:
    """The README's queries and every table on one 18.16 server and on a cluster's Distributed
    tables, the same data in both."""
    database = f"portal_compat_{os.getpid()}"
    old, cl = Old(url, database), Clustered(cluster_url, cluster_db)
    failures, passed = [], 0
    try:
        print(f"ClickHouse {version(old)} (one server) and a cluster of {version(cl)}")
        today = dt.date.fromisoformat(old.run("SELECT toString(today())").strip())
        for f in migration_files():
            for stmt in split_statements(f.read_text()):
                old.run(stmt)
        rows = events(20261201, 2000, today)
        for engine in (old, cl):
            for i in range(0, len(rows), 500):
                engine.run(insert(rows[i : i + 500]))
        checks = [(f"table {t}", q) for t, q in TABLE_CHECKS.items()]
        checks += [(f"README example {i}", q) for i, q in enumerate(readme_queries(), 1)]
        for label, sql in checks:
            try:
                a, b = old.run(sql), cl.run(sql)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{label}: {e}\n    {sql}")
                continue
            if a != b:
                failures.append(f"{label}: answers differ\n    {sql}\n  one server:\n{a[:800]}\n  cluster:\n{b[:800]}")
            elif not a.strip():
                failures.append(f"{label}: empty answer on both\n    {sql}")
            else:
                passed += 1
        return passed, failures, today.isoformat()
    finally:
        old.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clickhouse-url", default=os.environ.get("TEST_CLICKHOUSE_URL", "http://127.0.0.1:8123"))
    ap.add_argument("--cluster-url", help="compare with this cluster node instead of chDB")
    ap.add_argument("--cluster-database", help="the cluster database, migrated by portal-admin")
    args = ap.parse_args()
    for attempt in range(2):
        if args.cluster_url:
            passed, failures, day = compare_cluster(args.clickhouse_url, args.cluster_url, args.cluster_database)
        else:
            passed, failures, day = compare_once(args.clickhouse_url)
        now = dt.datetime.now(dt.timezone.utc).date().isoformat()
        # Queries relative to today() would differ if the day turned during the run: run again.
        if day == now or failures == [] or attempt == 1:
            break
        print(f"the day turned during the run ({day} → {now}); running again")
    for f in failures:
        print(f"FAIL {f}")
    print(f"{passed} checks agreed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
