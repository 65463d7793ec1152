#!/usr/bin/env python3
"""Make host/tests/fixtures/schemas/: one database per schema Pagehook has shipped.

`host/tests/it/schema_upgrades.rs` opens each of them with today's binary and
checks that it migrates and that every record reads back. A fixture must be
the schema as it was shipped, not as today's migration files say it was: two
migrations were edited after they had been committed (SQLite 3 and 8,
PostgreSQL 3), so a database made in between differs from one made now.

How a fixture is made, without building old binaries:
- Walk main's history (`git log --reverse` over host/src/store). At each
  commit, read the migration list (the `include_str!("schema…")` lines of the
  file that defines MIGRATIONS) and the files it names, as of that commit.
- Each time that list's content changes (a migration added, or one edited in
  place), apply it as of that commit to a new database, seed one or two rows
  per table (every column the table had then; the JSON columns in the shapes
  the code wrote, the event as `examples/events/page_created.json` had it at
  that commit), set the schema version the way that commit's code did, and
  dump it: SQLite as SQL text (with PRAGMA user_version), PostgreSQL with
  pg_dump (plain, no owner).
- Working-tree changes are not shipped: only commits are read.

Run it again after a release adds a migration (`scripts/schema-fixtures.py`);
fixtures already written are left as they are. It needs git, Python's sqlite3
and, for PostgreSQL, Debian's postgresql binaries (it starts a throwaway
server in a temporary directory, on a unix socket only).
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "host/tests/fixtures/schemas"
T0 = 1764000000000  # 2025-11-24, milliseconds: every timestamp is T0 + something


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def show(commit: str, path: str) -> str | None:
    try:
        return git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None


def migrations_at(commit: str, backend: str) -> list[str] | None:
    """The migration SQL texts of `backend` as `commit` shipped them."""
    candidates = {
        "sqlite": ["host/src/store/sqlite/mod.rs", "host/src/store/mod.rs", "host/src/store.rs"],
        "postgres": ["host/src/store/postgres/mod.rs"],
    }[backend]
    for path in candidates:
        text = show(commit, path)
        if not text or "const MIGRATIONS" not in text:
            continue
        block = text.split("const MIGRATIONS", 1)[1].split("];", 1)[0]
        names = re.findall(r'include_str!\("([^"]+)"\)', block)
        base = path.rsplit("/", 1)[0]
        return [show(commit, f"{base}/{name}") for name in names]
    return None


def shipped(backend: str) -> list[tuple[str, list[str]]]:
    """(commit, migrations) each time the backend's migrations changed."""
    commits = git("log", "--reverse", "--format=%h", "HEAD", "--", "host/src/store", "host/src/store.rs").split()
    seen, out = None, []
    for commit in commits:
        migrations = migrations_at(commit, backend)
        if not migrations or migrations == seen:
            continue
        seen = migrations
        out.append((commit, migrations))
    return out


def example_event(commit: str) -> str:
    text = show(commit, "examples/events/page_created.json")
    event = json.loads(text)
    event["source"] = "wiki"
    event["id"] = "wiki:page_created:2818051:1"
    return json.dumps(event, separators=(",", ":"))


def manifest(commit: str) -> str:
    text = show(commit, "plugins/slack-poster/plugin.toml") or show(commit, "examples/hello/plugin.toml")
    return json.dumps(tomllib.loads(text), separators=(",", ":"))


def seed_rows(commit: str) -> dict[str, list[dict]]:
    """One or two rows per table, every column any version had; filtered per version."""
    payload = json.dumps(
        {"timestamp": T0, "event": "page_created", "userKey": "8a7f80839e460b0f019e460ba6440001", "page": {"id": 2818051}},
        separators=(",", ":"),
    )
    action = json.dumps(
        {"type": "post-slack", "channel": "#eng", "text": "Ada created Q3 launch checklist", "blocks": None, "thread_key": "page-2818051"},
        separators=(",", ":"),
    )
    return {
        "connections": [
            {"name": "acme", "kind": "slack", "url": "https://slack.com/api", "username": None,
             "secret": "env:SLACK_BOT_TOKEN", "hook_secret": None, "dry_run": 0, "created_at": T0,
             "health_error": None, "token_name": None, "token_expires_at": None, "token_checked_at": None,
             "confluence": "wiki", "app_token": None, "proxy": None, "app_id": None, "tenant_id": None},
            {"name": "wiki", "kind": "confluence", "url": "https://wiki.example.com", "username": None,
             "secret": "env:CONFLUENCE_PAT", "hook_secret": "file:/run/secrets/hook", "dry_run": 0,
             "created_at": T0 + 1, "health_error": None, "token_name": "pagehook",
             "token_expires_at": T0 + 90 * 86400000, "token_checked_at": T0 + 2,
             "confluence": None, "app_token": None, "proxy": None, "app_id": None, "tenant_id": None},
        ],
        "plugins": [
            {"name": "slack-poster", "version": "0.1.0", "description": "Posts page events to Slack",
             "sha256": "5" * 64, "dir": "/var/lib/pagehook/plugins/slack-poster", "manifest": manifest(commit),
             "grants": '["post-slack"]', "enabled": 1, "failures": 0, "breaker_until": None,
             "breaker_error": None, "installed_at": T0 + 3},
        ],
        "bindings": [
            {"id": 1, "plugin": "slack-poster", "source": "wiki", "scope": "space:ENG",
             "events": '["page-created","page-updated"]', "destinations": '["slack:#eng"]',
             "settings": '[["mention","@here"]]', "dry_run": 0, "created_at": T0 + 4},
        ],
        "events": [
            {"id": 1, "key": "wiki:page_created:2818051:1", "source": "wiki", "name": "page_created",
             "received_at": T0 + 10, "payload": payload, "event": example_event(commit), "status": "dispatched",
             "attempts": 1, "next_try_at": 0, "error": None, "dispatched_at": T0 + 11,
             "claim_token": None, "claimed_by": None, "claim_until": None},
            {"id": 2, "key": "wiki:page_created:2818052:1", "source": "wiki", "name": "page_created",
             "received_at": T0 + 20, "payload": payload.replace("2818051", "2818052"), "event": None,
             "status": "pending", "attempts": 0, "next_try_at": 0, "error": None, "dispatched_at": None,
             "claim_token": None, "claimed_by": None, "claim_until": None},
        ],
        "deliveries": [
            {"id": 1, "event_id": 1, "binding_id": 1, "plugin": "slack-poster", "kind": "post-slack",
             "destination": "slack:#eng", "action": action, "dry_run": 0, "status": "sent", "attempts": 1,
             "next_try_at": 0, "last_error": None, "created_at": T0 + 12, "lane": "slack:acme:#eng",
             "source": "wiki", "uncertain": 0, "result": "1.000100", "sent_at": T0 + 13,
             "connection": "acme", "claim_token": None, "claimed_by": None},
            {"id": 2, "event_id": 1, "binding_id": 1, "plugin": "slack-poster", "kind": "post-slack",
             "destination": "slack:#eng", "action": action.replace("Ada created", "Ada updated"), "dry_run": 0,
             "status": "pending", "attempts": 1, "next_try_at": T0 + 60000, "last_error": "HTTP 503",
             "created_at": T0 + 14, "lane": "slack:acme:#eng", "source": "wiki", "uncertain": 0,
             "result": None, "sent_at": None, "connection": "acme", "claim_token": None, "claimed_by": None},
        ],
        "audit": [
            {"id": 1, "at": T0 + 12, "event_id": 1, "binding_id": 1, "plugin": "slack-poster", "sha256": "5" * 64,
             "kind": "post-slack", "destination": "slack:#eng", "verdict": "accepted", "reason": None},
        ],
        "failures": [
            {"id": 1, "at": T0 + 15, "event_id": 1, "binding_id": 1, "plugin": "slack-poster",
             "code": "trap", "message": "the plugin trapped", "log": ""},
        ],
        "attempts": [
            {"id": 1, "delivery_id": 1, "at": T0 + 13, "outcome": "sent", "error": None, "latency_ms": 120,
             "sent_at": T0 + 13},
            {"id": 2, "delivery_id": 2, "at": T0 + 14, "outcome": "retry", "error": "HTTP 503", "latency_ms": 80,
             "sent_at": T0 + 14},
        ],
        "slack_threads": [
            {"connection": "acme", "channel": "C0ENG00001", "thread_key": "page-2818051", "ts": "1.000100"},
        ],
        "once_keys": [{"source": "wiki", "once_key": "retro-2818051", "content_id": 2818099}],
        "lane_leases": [],
        "rate_limits": [],
        "sessions": [
            {"id_hash": "a" * 64, "principal": "admin", "csrf": "c" * 32, "created_at": T0 + 30,
             "expires_at": T0 + 30 + 8 * 3600000},
        ],
        "changes": [
            {"id": 1, "at": T0 + 4, "actor": "cli", "action": "binding.create", "target": "binding 1",
             "detail": '{"plugin":"slack-poster"}'},
        ],
        "user_links": [
            {"slack_connection": "acme", "slack_user": "U0ADA00001", "slack_team": "T0ACME0001",
             "confluence_connection": "wiki", "confluence_user_key": "8a7f80839e460b0f019e460ba6440001",
             "confluence_username": "ada", "confluence_display_name": "Ada Lovelace", "method": "self-link",
             "linked_at": T0 + 40},
        ],
        "teams_conversations": [
            {"connection": "bot", "user_id": "29:1ada", "aad_object_id": "aad-ada", "tenant_id": "tenant-1",
             "service_url": "https://smba.trafficmanager.net/emea/", "conversation_id": "a:1ada",
             "name": "Ada Lovelace", "email": "ada@example.com", "upn": "ada@example.com",
             "updated_at": T0 + 50},
        ],
        "teams_bot_teams": [
            {"connection": "bot", "team_id": "19:engineering@thread.tacv2", "team_name": "Engineering",
             "conversation_id": "19:engineering@thread.tacv2", "tenant_id": "tenant-1",
             "service_url": "https://smba.trafficmanager.net/emea/", "updated_at": T0 + 51},
        ],
        "binding_digests": [{"binding_id": 1, "enabled": 1, "threshold": 20, "window_secs": 300}],
        "held_events": [
            {"id": 1, "binding_id": 1, "event_id": 1, "space_key": "ENG", "page_update": None,
             "held_at": T0 + 11, "released_at": T0 + 12, "released_with": 1, "claim_token": None,
             "claim_until": None, "claimed_by": None},
        ],
        "link_tokens": [
            {"token_hash": "b" * 64, "request_key": "req-1", "slack_connection": "acme", "slack_team": "T0ACME0001",
             "slack_user": "U0ADA00001", "confluence_connection": "wiki", "created_at": T0 + 35,
             "expires_at": T0 + 35 + 600000, "user_key": "8a7f80839e460b0f019e460ba6440001", "username": "ada",
             "display_name": "Ada Lovelace", "confirm_hash": None, "used_at": T0 + 40},
        ],
    }


# Tables in an order that satisfies foreign keys.
ORDER = ["connections", "plugins", "bindings", "events", "deliveries", "audit", "failures", "attempts",
         "slack_threads", "once_keys", "lane_leases", "rate_limits", "sessions", "changes", "user_links",
         "link_tokens", "binding_digests", "held_events", "teams_conversations", "teams_bot_teams"]


class SeedError(Exception):
    pass


def rows_for(table: str, columns: dict[str, bool], seeds: dict) -> list[dict]:
    """`columns`: name -> required (NOT NULL without a default). Keeps the columns the table has."""
    if table not in seeds:
        raise SeedError(f"table {table} has no seed rows: add them to seed_rows()")
    out = []
    for row in seeds[table]:
        kept = {c: v for c, v in row.items() if c in columns}
        missing = [c for c, required in columns.items() if required and c not in kept]
        if missing:
            raise SeedError(f"{table}: no seed value for required column(s) {missing}")
        out.append(kept)
    return out


def sqlite_fixture(commit: str, migrations: list[str]) -> str:
    conn = sqlite3.connect(":memory:")
    for sql in migrations:
        conn.executescript(sql)
    conn.execute(f"PRAGMA user_version = {len(migrations)}")
    seeds = seed_rows(commit)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for table in sorted(tables, key=lambda t: ORDER.index(t) if t in ORDER else len(ORDER)):
        # table_xinfo: hidden = 2 or 3 marks generated columns, which are not written.
        info = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
        columns = {r[1]: bool(r[3]) and r[4] is None and not r[5] for r in info if r[6] == 0}
        for row in rows_for(table, columns, seeds):
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))
    conn.commit()
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise SeedError(f"foreign keys: {problems}")
    lines = [f"-- Pagehook SQLite store, schema version {len(migrations)}, as commit {commit} shipped it.",
             "-- Made by scripts/schema-fixtures.py; do not edit.",
             # As sqlite3's .dump: rows go in before the tables they refer to exist.
             "PRAGMA foreign_keys = OFF;",
             f"PRAGMA user_version = {len(migrations)};"]
    lines += list(conn.iterdump())
    return "\n".join(lines) + "\n"


class Postgres:
    """A throwaway server on a unix socket in a temporary directory."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise SystemExit("PostgreSQL fixtures need Debian's postgresql (make postgres)")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="pagehook-fixtures-pg-"))
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self.run(str(self.bin / "initdb"), "-D", str(data), "-U", "pagehook", "--auth=trust", "-E", "UTF8")
        self.run(str(self.bin / "pg_ctl"), "-D", str(data), "-w", "-l", str(self.dir / "log"),
                 "-o", f"-c listen_addresses='' -k {self.dir}", "start")

    def run(self, *cmd: str, input: str | None = None) -> str:
        return subprocess.run([*self.as_postgres, *cmd], check=True, capture_output=True, text=True,
                              input=input).stdout

    def psql(self, db: str, sql: str) -> str:
        return self.run(str(self.bin / "psql"), "-h", str(self.dir), "-U", "pagehook", "-d", db,
                        "-v", "ON_ERROR_STOP=1", "-qAt", input=sql)

    def stop(self):
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def postgres_fixture(pg: Postgres, commit: str, migrations: list[str], n: int) -> str:
    db = f"fixture_{n}_{commit}".lower()
    pg.psql("postgres", f"CREATE DATABASE {db}")
    # As that commit's migrate() did: the migrations, then its one bookkeeping row.
    pg.psql(db, "CREATE TABLE IF NOT EXISTS pagehook_schema (version INTEGER NOT NULL);\n"
            + "\n".join(migrations)
            + f"\nINSERT INTO pagehook_schema (version) VALUES ({len(migrations)});")
    seeds = seed_rows(commit)
    info = pg.psql(db, "SELECT table_name, column_name, is_nullable = 'NO' AND column_default IS NULL "
                       "AND is_identity = 'NO' AND is_generated = 'NEVER', data_type, is_generated "
                       "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    tables: dict[str, dict[str, bool]] = {}
    types: dict[tuple[str, str], str] = {}
    for line in info.splitlines():
        table, column, required, data_type, generated = line.split("|")
        if table == "pagehook_schema" or generated != "NEVER":
            continue
        tables.setdefault(table, {})[column] = required == "t"
        types[(table, column)] = data_type
    statements = []
    for table in sorted(tables, key=lambda t: ORDER.index(t) if t in ORDER else len(ORDER)):
        for row in rows_for(table, tables[table], seeds):
            values = []
            for column, value in row.items():
                if types[(table, column)] == "boolean" and value is not None:
                    value = bool(value)
                values.append(literal(value))
            statements.append(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(values)});")
        if "id" in tables[table]:
            # As the identity would stand after the binary had written these rows.
            statements.append(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}));")
    pg.psql(db, "\n".join(statements))
    dump = pg.run(str(pg.bin / "pg_dump"), "-h", str(pg.dir), "-U", "pagehook", "--no-owner",
                  "--no-privileges", "--format=plain", db)
    header = (f"-- Pagehook PostgreSQL store, schema version {len(migrations)}, as commit {commit} shipped it.\n"
              "-- Made by scripts/schema-fixtures.py (pg_dump --no-owner --no-privileges); do not edit.\n")
    return header + dump


def main():
    made = 0
    pg = None
    try:
        for backend in ["sqlite", "postgres"]:
            (OUT / backend).mkdir(parents=True, exist_ok=True)
            for n, (commit, migrations) in enumerate(shipped(backend)):
                path = OUT / backend / f"v{len(migrations):02}-{commit}.sql"
                if path.exists():
                    continue
                if backend == "sqlite":
                    text = sqlite_fixture(commit, migrations)
                else:
                    pg = pg or Postgres()
                    text = postgres_fixture(pg, commit, migrations, n)
                path.write_text(text)
                made += 1
                print(f"wrote {path.relative_to(ROOT)}")
    finally:
        if pg:
            pg.stop()
    print(f"{made} new fixture(s)")


if __name__ == "__main__":
    main()
