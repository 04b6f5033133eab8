"""
The generated Raft secret survives ``helm upgrade``.

Helm's ``lookup`` reads live objects from the API server during install and
upgrade. A tiny stand-in API server on loopback answers the two requests
Helm makes (discovery of ``/api/v1``, then GET of the Secret), so the chart's
keep-the-secret branch runs through Helm's real client code.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python
import pytest
import yaml

from ._chart import CHART_DIR, FULLNAME, NAMESPACE, RELEASE
from .scenarios import RAFT3

SECRET_NAME = f"{FULLNAME}-raft"


class FakeKubernetes:
    """Serves Secrets from a dict; records every path asked for."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake.requests.append(self.path)
                status, body = fake.answer(self.path.split("?")[0])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/api/v1":
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": [{"name": "secrets", "singularName": "secret", "namespaced": True,
                               "kind": "Secret", "verbs": ["get", "list"]}],
            }
        prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
        if path.startswith(prefix) and path[len(prefix):] in self.secrets:
            name = path[len(prefix):]
            return 200, {"kind": "Secret", "apiVersion": "v1",
                         "metadata": {"name": name, "namespace": NAMESPACE},
                         "data": self.secrets[name]}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "reason": "NotFound", "code": 404}

    def kubeconfig(self) -> str:
        return yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                      "namespace": NAMESPACE}}],
            "current-context": "fake",
        })


@pytest.fixture
def kubernetes() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=10)


def _cluster_render(fake: FakeKubernetes, values: dict[str, Any], *, upgrade: bool) -> str:
    """Render as install/upgrade would, and return the Raft secret's value."""
    with helm_python.Config(kubeconfig_content=fake.kubeconfig(), namespace=NAMESPACE) as config, \
            helm_python.Chart.load(CHART_DIR) as chart:
        files = config.render(chart, values, name=RELEASE, namespace=NAMESPACE,
                              is_install=not upgrade, is_upgrade=upgrade, revision=2 if upgrade else 1)
    for doc in yaml.safe_load_all(files["revenge/templates/secrets.yaml"]):
        if doc and doc["metadata"]["name"] == SECRET_NAME:
            return base64.b64decode(doc["data"]["secret"]).decode()
    raise AssertionError("no raft Secret rendered")


def test_upgrade_keeps_the_generated_raft_secret(kubernetes: FakeKubernetes) -> None:
    # Install: nothing to look up, a secret is generated.
    installed = _cluster_render(kubernetes, RAFT3, upgrade=False)
    assert len(installed) == 48
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET_NAME}" in [
        path.split("?")[0] for path in kubernetes.requests]

    # The cluster now holds it; an upgrade (even with other values) keeps it.
    kubernetes.secrets[SECRET_NAME] = {"secret": base64.b64encode(installed.encode()).decode()}
    upgraded = _cluster_render(kubernetes, {**RAFT3, "replicaCount": 5}, upgrade=True)
    assert upgraded == installed


def test_a_given_raft_secret_wins_over_the_stored_one(kubernetes: FakeKubernetes) -> None:
    kubernetes.secrets[SECRET_NAME] = {"secret": base64.b64encode(b"old-generated").decode()}
    given = {**RAFT3, "raft": {"enabled": True, "secret": "rotated-by-the-operator-7Vq2hZt9wKx3mPb0LrYcN5sJ"}}
    assert _cluster_render(kubernetes, given, upgrade=True) == "rotated-by-the-operator-7Vq2hZt9wKx3mPb0LrYcN5sJ"


def test_a_stored_secret_without_the_key_is_replaced(kubernetes: FakeKubernetes) -> None:
    kubernetes.secrets[SECRET_NAME] = {"other": base64.b64encode(b"x").decode()}
    value = _cluster_render(kubernetes, RAFT3, upgrade=True)
    assert len(value) == 48
