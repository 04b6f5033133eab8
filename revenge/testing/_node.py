"""
A whole node in the test's own process: ``build_server`` on loopback with a
real database, started on the test's reactor, with an admin user. Faster than
a :class:`ServerProcess`, and the test can reach into the node's parts
(``node.server.database``, ``node.server.storage``, the services), which a
separate process never allows.

The settings every such node needs are made here once; a suite adds its own
(``env``) on top, and ``shutdown_linger`` is 0 s by default: a node is
stopped after every test, and the listener's linger (2 s in production)
would add its real seconds to each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import treq

if TYPE_CHECKING:
    from revenge.config import Config
    from revenge.db import Database
    from revenge.server._server import Server

# The node id of a node built here unless a test names another.
TEST_NODE_ID = "test-node"


@dataclass
class Reply:
    """One answer of :meth:`InProcessNode.call`; ``body`` is the decoded JSON."""

    status: int
    headers: Any
    body: Any


@dataclass
class InProcessNode:
    """A node started by :func:`start_in_process_node`, and the admin made on it."""

    url: str
    server: Server
    admin_name: str = "root"
    admin_token: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def database(self) -> Database:
        return self.server.database

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request; ``body`` is the decoded JSON (None for an empty body)."""
        sent: dict[bytes | str, bytes | str] = {}
        sent.update((headers or {}).items())
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        response = await treq.request(method, self.url + path, headers=sent, data=data)
        raw = await treq.content(response)
        body = json.loads(raw) if raw else None
        return Reply(response.code, response.headers, body)

    async def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user directly in the database (no API call); returns its token."""
        from revenge.users import create_user

        node_id = self.server.config.node_id
        created = await self.database.write(
            lambda connection: create_user(
                connection, name, is_admin=admin, node_id=node_id, actor=None, via="test"
            )
        )
        token: str = created.token
        return token

    async def stop(self) -> None:
        await self.server.service.stopService()


def node_config(
    tmp_path: Path,
    database_url: str,
    env: Mapping[str, str] | None = None,
    *,
    node_id: str = TEST_NODE_ID,
    shutdown_linger: str = "0s",
) -> Config:
    """
    An in-process node's configuration, loaded as the node would load it (no
    file, cwd ``tmp_path``): files under ``tmp_path``, any free port on
    loopback, then ``env`` (REVENGE_* settings) on top.
    """
    from revenge.config import load_config

    environ = {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_DATABASE_URL": database_url,
        "REVENGE_NODE_ID": node_id,
        "REVENGE_SERVER_LISTEN": "tcp:0:interface=127.0.0.1",
        "REVENGE_SERVER_SHUTDOWN_LINGER": shutdown_linger,
        # tmp_path is often too long for a Unix socket's path (107 bytes).
        "REVENGE_SERVER_CONTROL_SOCKET": "",
        **(env or {}),
    }
    return load_config(None, environ, cwd=str(tmp_path))


async def start_in_process_node(
    tmp_path: Path,
    database_url: str,
    env: Mapping[str, str] | None = None,
    *,
    node_id: str = TEST_NODE_ID,
    shutdown_linger: str = "0s",
    admin_name: str = "root",
    reactor: Any = None,
) -> InProcessNode:
    """
    Build a node with :func:`node_config`, start it on ``reactor`` (the
    global one by default), wait for its migrations, and add ``admin_name``
    as an admin. Stop it with :meth:`InProcessNode.stop`; when starting
    fails it is stopped here, so that no listener outlives the test.
    """
    from revenge.server._server import build_server

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor

    config = node_config(
        tmp_path, database_url, env, node_id=node_id, shutdown_linger=shutdown_linger
    )
    server = build_server(config, reactor)
    server.service.startService()
    try:
        database_service: Any = server.service.getServiceNamed("database")
        await database_service.migrated.addTimeout(30, reactor)
        http_service: Any = server.service.getServiceNamed("http")
        port: int = http_service.port.getHost().port
        node = InProcessNode(f"http://127.0.0.1:{port}", server, admin_name)
        node.admin_token = await node.add_user(admin_name, admin=True)
    except BaseException:
        await server.service.stopService()
        raise
    return node
