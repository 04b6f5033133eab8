"""
Steady HTTP load on a set of Revenge nodes, in its own process, recording
every request's outcome.

    python bench/_chaos_load.py PLAN.json

Used by the chaos suite (tests/chaos) and the ``rolling_restart`` benchmark.
The plan (JSON) names ``nodes`` (base URLs), ``admin_token`` (or
``admin_tokens``, one per node, when the nodes have their own databases), ``users``
([{"name", "token"}]), ``clients`` (threads), ``out`` (where the record goes),
``stop_file`` (the load stops once it exists) and ``max_seconds`` (it stops
then in any case). Each client thread goes round the nodes and, in turn,
``GET /healthz``, ``GET /api/v1/activity`` (admin), ``PUT`` and ``GET`` of its
own users' avatars (a user belongs to one client, so a user's uploads never
overlap). Every request opens a fresh connection, so that how far it got is
known exactly:

- ``refused``: the connection could not be made (nothing was sent);
- ``lost``: connected and (part of) the request sent, then no complete
  response (reset, closed, timed out); ``response_started`` says whether
  the status line had arrived;
- ``response``: a complete response; ``status`` says which.

The record (written once, at the end) is ``{"started", "finished",
"requests": [...]}``, each request ``{"client", "node", "op", "user", "t0",
"t_connected", "t1", "outcome", "status", "key", "error"}`` with wall-clock
times (``time.time()``) so that a driver in another process can line them up
with its own events.
"""

from __future__ import annotations

import http.client
import json
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

TIMEOUT_S = 15.0
# Between two requests of one client: a steady load, not a flood (2 cores).
PAUSE_S = 0.02


def tiny_png(seed: int) -> bytes:
    """A valid 1x1 PNG whose pixel depends on ``seed`` (so bodies differ)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixel = bytes([0, seed % 256, (seed // 256) % 256, 7])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


class Client(threading.Thread):
    def __init__(self, index: int, plan: dict[str, Any], stop: threading.Event) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.index = index
        self.plan = plan
        self.stop = stop
        self.records: list[dict[str, Any]] = []
        users = plan["users"]
        self.users = [u for i, u in enumerate(users) if i % plan["clients"] == index]

    def run(self) -> None:
        nodes = self.plan["nodes"]
        step = 0
        while not self.stop.is_set():
            node = (step + self.index) % len(nodes)
            kind = step % 4
            step += 1
            if kind == 0:
                self.request(node, "healthz", "GET", "/healthz", {}, None, None)
            elif kind == 1:
                tokens = self.plan.get("admin_tokens") or [self.plan["admin_token"]] * len(nodes)
                headers = {"Authorization": f"Bearer {tokens[node]}"}
                self.request(node, "activity", "GET", "/api/v1/activity?limit=5", headers, None, None)
            elif self.users:
                user = self.users[(step // 4) % len(self.users)]
                path = f"/api/v1/users/{urllib.parse.quote(user['name'])}/avatar"
                if kind == 2:
                    headers = {
                        "Authorization": f"Bearer {user['token']}",
                        "Content-Type": "image/png",
                    }
                    body = tiny_png(step * 31 + self.index)
                    self.request(node, "avatar_put", "PUT", path, headers, body, user["name"])
                else:
                    self.request(node, "avatar_get", "GET", path, {}, None, user["name"])
            self.stop.wait(PAUSE_S)

    def request(
        self,
        node: int,
        op: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        user: str | None,
    ) -> None:
        url = urllib.parse.urlsplit(self.plan["nodes"][node])
        record: dict[str, Any] = {
            "client": self.index,
            "node": node,
            "op": op,
            "user": user,
            "t0": time.time(),
            "t_connected": None,
            "t1": None,
            "outcome": None,
            "status": None,
            "key": None,
            "error": None,
            "response_started": False,
        }
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
        try:
            try:
                connection.connect()
            except OSError as error:
                record["outcome"] = "refused"
                record["error"] = f"{type(error).__name__}: {error}"
                return
            record["t_connected"] = time.time()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                record["response_started"] = True
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                record["outcome"] = "lost"
                record["error"] = f"{type(error).__name__}: {error}"
                return
            record["outcome"] = "response"
            record["status"] = response.status
            if op == "avatar_put" and response.status == 201:
                try:
                    record["key"] = json.loads(payload)["key"]
                except (ValueError, KeyError, TypeError):
                    record["error"] = "201 without a key"
        finally:
            record["t1"] = time.time()
            connection.close()
            self.records.append(record)


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[1]).read_text())
    stop = threading.Event()
    started = time.time()
    clients = [Client(i, plan, stop) for i in range(plan["clients"])]
    for client in clients:
        client.start()
    stop_file = Path(plan["stop_file"])
    deadline = time.monotonic() + float(plan["max_seconds"])
    while not stop_file.exists() and time.monotonic() < deadline:
        stop.wait(0.05)
    stop.set()
    for client in clients:
        client.join(TIMEOUT_S + 5)
    requests = sorted((r for c in clients for r in c.records), key=lambda r: r["t0"])
    out = Path(plan["out"])
    out.with_suffix(".tmp").write_text(
        json.dumps({"started": started, "finished": time.time(), "requests": requests})
    )
    out.with_suffix(".tmp").replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
