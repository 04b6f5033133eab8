"""
``revenge cluster status``: one node's view of the election, over its HTTP
API with an admin token, or, on the node itself, over its control socket
(``server.control_socket``), which needs none.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

from revenge.cli._common import CommandError, config_from_args

TOKEN_VARIABLE = "REVENGE_API_TOKEN"
_DEFAULT_PORT = 8096


def configure_cluster_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help=(
            "the node to ask, e.g. http://revenge-0.revenge:8096 "
            "(default: this machine, on the port of server.listen)"
        ),
    )
    parser.add_argument(
        "--token",
        help=f"an admin API token (default: the {TOKEN_VARIABLE} environment variable)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


def _default_url(args: argparse.Namespace) -> str:
    listen = config_from_args(args).server.listen
    kind, _, rest = listen.partition(":")
    port = rest.split(":", 1)[0]
    if kind in ("tcp", "tcp6") and port.isdigit():
        return f"http://127.0.0.1:{port}"
    return f"http://127.0.0.1:{_DEFAULT_PORT}"


def _fetch(url: str, token: str, timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v1/cluster", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = error.reason
        raise CommandError(f"{url} answered {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CommandError(f"cannot reach {url}: {reason}") from None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: the node's control socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            connection.connect(self._path)
        except OSError:
            connection.close()
            raise
        self.sock = connection


def _fetch_local(path: str, timeout: float) -> dict[str, Any]:
    connection = _UnixConnection(path, timeout)
    try:
        connection.request("GET", "/api/v1/cluster")
        response = connection.getresponse()
        text = response.read()
    except OSError as error:
        raise CommandError(
            f"cannot reach this node's control socket {path}: {error.strerror or error}"
        ) from None
    finally:
        connection.close()
    if response.status != 200:
        raise CommandError(f"the control socket {path} answered {response.status}")
    body: dict[str, Any] = json.loads(text)
    return body


def _describe(status: dict[str, Any]) -> str:
    lines = [
        f"node:       {status.get('node_id')} ({status.get('backend')})",
        f"leader:     {status.get('leader') or 'none known'}"
        + ("  <- this node" if status.get("is_leader") else ""),
        f"term:       {status.get('term')}",
        f"has quorum: {'yes' if status.get('has_quorum', True) else 'NO'}",
    ]
    peers = status.get("peers") or []
    if peers:
        lines.append("peers:")
        for peer in peers:
            if isinstance(peer, dict):
                state = "connected" if peer.get("connected") else "not connected"
                name = peer.get("node_id") or peer.get("address")
                lines.append(f"  - {name} ({peer.get('address')}): {state}")
            else:
                lines.append(f"  - {peer}")
    return "\n".join(lines) + "\n"


def cluster_status(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_VARIABLE, "")
    if token or args.url:
        if not token:
            raise CommandError(
                f"an admin token is needed to ask {args.url}: pass --token or set "
                f"{TOKEN_VARIABLE}",
                exit_code=2,
            )
        status = _fetch(args.url or _default_url(args), token, args.timeout)
    else:
        # On the node itself (kubectl exec, docker compose exec): its control
        # socket, where the file's mode is the check and no token is needed.
        path = config_from_args(args).server.control_socket
        if not path or not os.path.exists(path):
            where = f"no control socket at {path}" if path else "server.control_socket is empty"
            raise CommandError(
                f"{where}, so this is not a running node's machine (or its user): ask a node "
                f"with --url and an admin token (--token or {TOKEN_VARIABLE})",
                exit_code=2,
            )
        status = _fetch_local(path, args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        sys.stdout.write(_describe(status))
    # Scripts can tell a healthy cluster (a leader with quorum) from one without.
    healthy = bool(status.get("leader")) and bool(status.get("has_quorum", True))
    return 0 if healthy else 1
