"""
Rendering ``charts/revenge`` with Helm's own SDK and reading the result.

``helm_python`` binds Helm's Go SDK (shipped in the wheel as a shared
library): these are the templates, values coalescing, ``values.schema.json``
checks and ``fail`` calls of a real ``helm install``, without a cluster.
Renders are cached per values, so every test may render what it needs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "revenge"

RELEASE = "media1"
NAMESPACE = "media"
# The fullname of a release whose name does not contain the chart's name.
FULLNAME = f"{RELEASE}-revenge"

# Kubernetes versions every manifest is validated against (strict mode:
# unknown fields are errors): a recent pinned release, and the oldest the
# chart claims in Chart.yaml's kubeVersion.
KUBERNETES_VERSION = "1.33.0"
OLDEST_KUBERNETES_VERSION = "1.27.0"

Doc = dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    template: str  # e.g. revenge/templates/workload.yaml
    doc: Doc

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])


@dataclass(frozen=True)
class Rendered:
    values: Mapping[str, Any]
    files: Mapping[str, str]
    manifests: tuple[Manifest, ...]

    @property
    def notes(self) -> str:
        return self.files["revenge/templates/NOTES.txt"]

    def of_kind(self, kind: str) -> list[Doc]:
        return [m.doc for m in self.manifests if m.kind == kind]

    def one(self, kind: str, name: str | None = None) -> Doc:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(m.kind for m in self.manifests)

    @property
    def workload(self) -> Doc:
        workloads = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        assert len(workloads) == 1, [w["kind"] for w in workloads]
        return workloads[0]

    @property
    def pod_spec(self) -> Doc:
        spec: Doc = self.workload["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Doc:
        containers: list[Doc] = self.pod_spec["containers"]
        (container,) = [c for c in containers if c["name"] == "revenge"]
        return container

    def containers(self) -> Iterator[Doc]:
        for kind in ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"):
            for doc in self.of_kind(kind):
                spec = doc["spec"]
                if kind == "CronJob":
                    spec = spec["jobTemplate"]["spec"]
                pod = spec["template"]["spec"]
                yield from pod.get("initContainers", [])
                yield from pod["containers"]

    def env(self, container: Doc | None = None) -> dict[str, Doc]:
        """The container's env entries by name (names are unique)."""
        entries = (container or self.container).get("env", [])
        names = [e["name"] for e in entries]
        assert len(names) == len(set(names)), f"duplicate env names: {names}"
        return {e["name"]: e for e in entries}

    def env_value(self, name: str) -> str:
        entry = self.env()[name]
        assert "valueFrom" not in entry
        return str(entry["value"])


@functools.cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def render_files(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """The raw output of Helm: template path -> rendered text (uncached)."""
    return _chart().render(dict(values or {}), name=release, namespace=namespace)


def parse_files(files: Mapping[str, str]) -> tuple[Manifest, ...]:
    manifests = []
    for template, text in sorted(files.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(Manifest(template, doc))
    return tuple(manifests)


@functools.cache
def _render_cached(key: str, release: str, namespace: str) -> Rendered:
    values = json.loads(key)
    files = render_files(values, release=release, namespace=namespace)
    return Rendered(values=values, files=files, manifests=parse_files(files))


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    return _render_cached(json.dumps(values or {}, sort_keys=True), release, namespace)


def load_values_file(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge values like repeated ``-f`` options (later wins)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
    return merged


# CRDs of the Prometheus Operator are not in Kubernetes' schemas.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def validate_manifest(doc: Doc, version: str = KUBERNETES_VERSION) -> None:
    """Strict schema validation; raises kubernetes_validate.ValidationError."""
    kubernetes_validate.validate(doc, version, strict=True)


_DURATION = re.compile(r"^(\d+)s$")


def seconds(duration: str) -> int:
    """The chart writes durations as whole seconds (``25s``)."""
    match = _DURATION.match(duration)
    assert match, f"not a whole-seconds duration: {duration!r}"
    return int(match.group(1))


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubelet_environment(entries: list[Doc], fields: Mapping[str, str]) -> dict[str, str]:
    """
    The environment the kubelet gives a container: ``fieldRef`` values from
    ``fields``, and ``$(NAME)`` references expanded with the variables defined
    before them (an unknown reference stays as written, like the kubelet).
    """
    env: dict[str, str] = {}
    for entry in entries:
        if "value" in entry:
            value = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), str(entry["value"]))
        elif "fieldRef" in entry.get("valueFrom", {}):
            value = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = f"<from {json.dumps(entry['valueFrom'], sort_keys=True)}>"
        env[entry["name"]] = value
    return env
