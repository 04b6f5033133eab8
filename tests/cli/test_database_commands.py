"""``revenge migrate`` and ``revenge user add``, run as the real command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from revenge.auth._tokens import parse_token
from revenge.auth._users import find_user_by_token
from revenge.db import activity, create_database_engine, read_transaction
from revenge.db._migrate import head_revision

REVENGE = Path(sys.executable).with_name("revenge")


def revenge(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env.update({"REVENGE_DATABASE_URL": database_url, "REVENGE_DATA_DIR": str(tmp_path / "data")})
    return subprocess.run(
        [str(REVENGE), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_then_migrate_again(tmp_path: Path, empty_database_url: str):
    first = revenge(tmp_path, empty_database_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"database schema upgraded from empty to {head_revision()}\n"
    again = revenge(tmp_path, empty_database_url, "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"database schema is current at {head_revision()}\n"


def test_user_add_prints_the_token_once(tmp_path: Path, database_url: str):
    added = revenge(tmp_path, database_url, "user", "add", "alice", "--admin")
    assert added.returncode == 0, added.stderr
    lines = added.stdout.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert parse_token(token) is not None
    assert token not in added.stderr
    assert "shown this once" in added.stderr
    engine = create_database_engine(database_url)
    try:
        with read_transaction(engine) as connection:
            user = find_user_by_token(connection, token)
    finally:
        engine.dispose()
    assert user is not None
    assert (user.name, user.is_admin) == ("alice", True)

    again = revenge(tmp_path, database_url, "user", "add", "alice")
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == "revenge: user 'alice' already exists\n"


def test_user_add_on_a_new_database_migrates_it_first(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/new/revenge.db"
    added = revenge(tmp_path, url, "user", "add", "first")
    assert added.returncode == 0, added.stderr
    assert parse_token(added.stdout.strip()) is not None


@pytest.mark.parametrize("name", ["Alice", "with space"])
def test_user_add_refuses_bad_names_in_one_line(tmp_path: Path, name: str):
    result = revenge(tmp_path, f"sqlite:///{tmp_path}/revenge.db", "user", "add", name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("revenge: invalid user name")
    assert result.stderr.count("\n") == 1


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://revenge:hunter2@127.0.0.1:{port}/revenge"
    for args in (["migrate"], ["user", "add", "alice"]):
        result = revenge(tmp_path, url, *args)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("revenge: database postgresql://revenge:***@")
        assert "hunter2" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


# Every four characters of these are distinctive: none may show anywhere.
PASSWORD = "Qx7@Wv9k/Jz3?Ym8"
SSL_PASSWORD = "Sp4ss@K3yQ"


def _leaked(text: str) -> list[str]:
    """The runs of four characters of either password (or its encoding) in ``text``."""
    forms = [form for secret in (PASSWORD, SSL_PASSWORD) for form in (secret, quote(secret, safe=""))]
    return [form[i : i + 4] for form in forms for i in range(len(form) - 3) if form[i : i + 4] in text]


@pytest.mark.parametrize("where", ["unresolvable", "closed"])
def test_a_failed_connection_shows_no_part_of_an_encoded_password(tmp_path: Path, where: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = "nonexistent.invalid" if where == "unresolvable" else f"127.0.0.1:{port}"
    url = (
        f"postgresql://revenge:{quote(PASSWORD, safe='')}@{host}/revenge"
        f"?sslpassword={quote(SSL_PASSWORD, safe='')}"
    )
    for args in (["migrate"], ["user", "add", "alice"]):
        result = revenge(tmp_path, url, *args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(
            f"revenge: database postgresql://revenge:***@{host}/revenge?sslpassword=*** "
            "failed: OperationalError: "
        ), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert _leaked(result.stderr + result.stdout) == [], result.stderr


def test_an_unencoded_password_is_refused_before_connecting(tmp_path: Path):
    result = revenge(tmp_path, "postgresql://revenge:Qx7@Wv9kJz3Ym8@127.0.0.1/revenge", "migrate")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "revenge: config key 'database.url' (from environment variable REVENGE_DATABASE_URL): "
        "the password holds a raw '@'"
    ), result.stderr
    assert "%40" in result.stderr
    assert "Wv9k" not in result.stderr
    assert "Qx7" not in result.stderr


def _user_by_token(database_url: str, token: str):
    engine = create_database_engine(database_url)
    try:
        with read_transaction(engine) as connection:
            return find_user_by_token(connection, token)
    finally:
        engine.dispose()


def test_users_can_be_listed_rotated_and_deleted(tmp_path: Path, database_url: str):
    empty = revenge(tmp_path, database_url, "user", "list")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "revenge user add NAME --admin" in empty.stderr
    old = revenge(tmp_path, database_url, "user", "add", "bob").stdout.strip()
    assert revenge(tmp_path, database_url, "user", "add", "alice", "--admin").returncode == 0

    listed = revenge(tmp_path, database_url, "user", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        ["alice", "admin"],
        ["bob", "user"],
    ]
    as_json = json.loads(revenge(tmp_path, database_url, "user", "list", "--json").stdout)
    assert [(u["name"], u["admin"], u["has_avatar"]) for u in as_json] == [
        ("alice", True, False),
        ("bob", False, False),
    ]
    assert old not in listed.stdout

    rotated = revenge(tmp_path, database_url, "user", "rotate-token", "bob")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert parse_token(new) is not None and new != old
    assert "old one no longer works" in rotated.stderr
    assert _user_by_token(database_url, old) is None
    assert _user_by_token(database_url, new).name == "bob"
    engine = create_database_engine(database_url)
    try:
        with read_transaction(engine) as connection:
            actions = [
                row.action
                for row in connection.execute(
                    select(activity.c.action).where(activity.c.target == "bob")
                )
            ]
    finally:
        engine.dispose()
    assert "user.token_rotated" in actions

    deleted = revenge(tmp_path, database_url, "user", "delete", "bob")
    assert (deleted.returncode, deleted.stdout) == (0, "deleted user 'bob'\n")
    assert _user_by_token(database_url, new) is None
    gone = revenge(tmp_path, database_url, "user", "delete", "bob")
    assert (gone.returncode, gone.stderr) == (1, "revenge: no user 'bob'\n")
    missing = revenge(tmp_path, database_url, "user", "rotate-token", "nobody")
    assert (missing.returncode, missing.stderr) == (1, "revenge: no user 'nobody'\n")
    bad = revenge(tmp_path, database_url, "user", "delete", "Bad Name")
    assert bad.returncode == 2 and bad.stderr.startswith("revenge: invalid user name")
