"""
End to end with a real database: several ``twistd -n revenge`` processes on
one database, tokens kept out of logs, and a database that goes away and
comes back (through a TCP proxy the test cuts and restores).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import make_url, text

from revenge.auth._tokens import parse_token
from revenge.db import create_database_engine
from revenge.db._migrate import head_revision
from revenge.testing import ServerProcess, TcpProxy, wait_until

REVENGE = Path(sys.executable).with_name("revenge")
STARTUP_S = 60


def call(
    url: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    sent = {}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, (json.loads(raw) if raw else None)


def readiness(url: str) -> tuple[int, Any] | None:
    try:
        return call(url, "GET", "/readyz")
    except OSError:
        return None


def wait_ready(node: ServerProcess, timeout: float = STARTUP_S) -> None:
    url = node.url
    wait_until(lambda: (readiness(url) or (0,))[0] == 200, timeout, f"{url}/readyz to say 200")


def add_user_with_cli(workdir: Path, database_url: str, name: str, admin: bool) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env.update({"REVENGE_DATABASE_URL": database_url, "REVENGE_DATA_DIR": str(workdir / "data")})
    args = [str(REVENGE), "user", "add", name] + (["--admin"] if admin else [])
    result = subprocess.run(
        args, cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def schema_versions(database_url: str) -> list[str]:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            return list(versions.scalars())
    finally:
        engine.dispose()


def start_nodes_together(tmp_path: Path, database_url: str, count: int) -> list[ServerProcess]:
    nodes = [
        ServerProcess(
            tmp_path / f"node-{index}",
            env={"REVENGE_DATABASE_URL": database_url, "REVENGE_NODE_ID": f"node-{index}"},
        )
        for index in range(count)
    ]
    for node in nodes:
        node.start()
    return nodes


def migration_outcomes(nodes: list[ServerProcess]) -> list[str]:
    outcomes = []
    for node in nodes:
        record = node.wait_for_log(
            lambda r: r.get("namespace") == "revenge.db" and "database schema" in r["message"],
            what="the migration outcome",
        )
        outcomes.append("upgraded" if "upgraded" in record["message"] else "current")
    return sorted(outcomes)


def test_three_nodes_start_together_on_an_empty_postgresql(tmp_path: Path, postgres_server):
    url = postgres_server.create_database()
    nodes = start_nodes_together(tmp_path, url, 3)
    try:
        for node in nodes:
            wait_ready(node)
        assert migration_outcomes(nodes) == ["current", "current", "upgraded"]
        assert schema_versions(url) == [head_revision()]
        for node in nodes:
            assert node.stop() == 0
    finally:
        for node in nodes:
            node.stop()


def test_two_nodes_start_together_on_one_sqlite_file(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/shared/revenge.db"
    nodes = start_nodes_together(tmp_path, url, 2)
    try:
        for node in nodes:
            wait_ready(node)
        assert migration_outcomes(nodes) == ["current", "upgraded"]
        assert schema_versions(url) == [head_revision()]
    finally:
        for node in nodes:
            node.stop()


def test_tokens_never_reach_the_logs(tmp_path: Path, database_url: str):
    admin_token = add_user_with_cli(tmp_path, database_url, "admin", admin=True)
    node = ServerProcess(tmp_path, env={"REVENGE_DATABASE_URL": database_url})
    with node:
        wait_ready(node)
        status, body = call(node.url, "POST", "/api/v1/users", admin_token, {"name": "bob"})
        assert status == 201
        bob_token = body["token"]
        assert call(node.url, "GET", "/api/v1/activity", bob_token)[0] == 403
        # In the query string too, where access logs often leak secrets.
        leaky_path = f"/api/v1/activity?token={admin_token}"
        assert call(node.url, "GET", leaky_path, admin_token)[0] == 200
        assert call(node.url, "GET", "/api/v1/activity", bob_token + "x")[0] == 401
        assert call(node.url, "DELETE", "/api/v1/users/bob", admin_token)[0] == 204
        node.wait_for_log(
            lambda r: r.get("message", "").startswith("user bob deleted"),
            what="the delete's log line",
        )
        assert node.stop() == 0
    secrets = [admin_token, bob_token]
    for token in list(secrets):
        parts = parse_token(token)
        assert parts is not None
        secrets.append(parts.verifier)
    lines = node.raw_lines + node.stderr_text.splitlines()
    assert any("user bob created" in line for line in lines)
    for secret in secrets:
        leaking = [line for line in lines if secret in line]
        assert leaking == []


def _through(proxy: TcpProxy, database_url: str) -> str:
    return make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )


def test_database_down_then_up(tmp_path: Path, postgres_server):
    direct = postgres_server.create_database()
    admin_token = add_user_with_cli(tmp_path, direct, "admin", admin=True)
    with TcpProxy(postgres_server.host, postgres_server.port) as proxy:
        node = ServerProcess(tmp_path, env={"REVENGE_DATABASE_URL": _through(proxy, direct)})
        with node:
            wait_ready(node)
            assert call(node.url, "GET", "/api/v1/activity", admin_token)[0] == 200

            proxy.cut()
            wait_until(
                lambda: (readiness(node.url) or (0,))[0] == 503, 30, "/readyz to say 503"
            )
            status, body = call(node.url, "GET", "/readyz")
            assert status == 503
            assert body["failing"] == ["database"]
            status, body = call(node.url, "GET", "/api/v1/activity", admin_token)
            assert status == 503
            assert body["error"]["code"] == "database_unavailable"
            assert call(node.url, "GET", "/healthz")[0] == 200

            proxy.restore()
            wait_ready(node, 30)
            assert call(node.url, "GET", "/api/v1/activity", admin_token)[0] == 200
            node.wait_for_log(
                lambda r: "readiness check database passing again" in r.get("message", ""),
                what="the recovery log line",
            )
            assert node.stop() == 0


def test_starting_while_the_database_is_unreachable(tmp_path: Path, postgres_server):
    direct = postgres_server.create_database()
    with TcpProxy(postgres_server.host, postgres_server.port) as proxy:
        proxy.cut()
        node = ServerProcess(tmp_path, env={"REVENGE_DATABASE_URL": _through(proxy, direct)})
        with node:
            assert call(node.url, "GET", "/healthz")[0] == 200
            node.wait_for_log(
                lambda r: "database not ready (attempt 1)" in r.get("message", ""),
                what="the first failed migration attempt",
            )
            status, body = call(node.url, "GET", "/readyz")
            assert status == 503
            assert body["failing"] == ["database"]
            status, body = call(node.url, "GET", "/api/v1/activity", "rvg_whatever")
            assert (status, body["error"]["code"]) == (503, "database_unavailable")

            proxy.restore()
            wait_ready(node, 30)
            assert schema_versions(direct) == [head_revision()]
            assert node.stop() == 0


def test_database_passwords_never_reach_the_logs(tmp_path: Path):
    # Percent-encoded, as it must be; the "@" once put the password's tail in
    # the host libpq "failed to resolve", on every retry line.
    password, ssl_password = "Qx7@Wv9k/Jz3?Ym8", "Sp4ss@K3yQ"
    url = (
        f"postgresql://revenge:{quote(password, safe='')}@nonexistent.invalid/revenge"
        f"?sslpassword={quote(ssl_password, safe='')}"
    )
    node = ServerProcess(tmp_path, env={"REVENGE_DATABASE_URL": url})
    with node:
        retry = node.wait_for_log(
            lambda r: "database not ready (attempt 2)" in r.get("message", ""),
            what="the second failed migration attempt",
        )
        assert "failed to resolve host 'nonexistent.invalid'" in retry["message"]
        status, body = call(node.url, "GET", "/readyz")
        assert (status, body["failing"]) == (503, ["database"])
        node.wait_for_log(
            lambda r: "readiness check database failing" in r.get("message", ""),
            what="the readiness check's failure",
        )
        assert node.stop() == 0
    lines = node.raw_lines + node.stderr_text.splitlines()
    forms = [form for secret in (password, ssl_password) for form in (secret, quote(secret, safe=""))]
    pieces = {form[i : i + 4] for form in forms for i in range(len(form) - 3)}
    leaking = [line for line in lines if any(piece in line for piece in pieces)]
    assert leaking == []
