"""
docker-compose.yml (one machine) and docker-stack.yml (Swarm): parsed as the
YAML they are and checked for what they promise: the services, healthchecks,
a Raft cluster of three whose peers are the others, real configuration keys,
read-only media and no secret written into the file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from revenge.config import config_keys
from revenge.config._duration import parse_duration
from revenge.config._keys import schema as config_schema

ROOT = Path(__file__).resolve().parents[2]
CONFIG_ENV = {env for _, env in config_keys()}
SECRET_ENV = {key.env for key in config_schema().keys if key.secret or key.url_password}
NODES = ["revenge-1", "revenge-2", "revenge-3"]
FILES = ["docker-compose.yml", "docker-stack.yml"]


def _load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _volumes(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Mount target -> (source, mode) from the short volume syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        # From the right: the source may hold ":" (${MEDIA_DIR:-./media}).
        parts = volume.rsplit(":", 2)
        if parts[-1].startswith("/"):
            source, target, mode = volume.rsplit(":", 1) + ["rw"]
        else:
            source, target, mode = parts
        mounts[target] = (source, mode)
    return mounts


@pytest.fixture(params=FILES)
def stack(request) -> tuple[str, dict[str, Any]]:
    return request.param, _load(request.param)


def test_the_services_are_there(stack):
    name, definition = stack
    services = definition["services"]
    assert {"postgres", "minio", "minio-init", *NODES} <= set(services)
    for service in ("postgres", "minio", *NODES):
        test = services[service]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    # The bucket is created by a one-shot mc container.
    script = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing local/revenge" in script
    for node in NODES:
        assert _environment(services[node])["REVENGE_STORAGE_S3_BUCKET"] == "revenge"


def test_nodes_form_a_raft_cluster_of_three(stack):
    _, definition = stack
    services = definition["services"]
    advertised = {}
    for node in NODES:
        env = _environment(services[node])
        assert env["REVENGE_ELECTION_BACKEND"] == "raft"
        assert env["REVENGE_NODE_ID"] == node
        advertised[node] = env["REVENGE_RAFT_ADVERTISE_ADDR"]
        assert advertised[node] == f"{node}:7000"
        assert services[node]["hostname"] == node
    for node in NODES:
        peers = _environment(services[node])["REVENGE_RAFT_PEERS"].split(",")
        assert sorted(peers) == sorted(a for n, a in advertised.items() if n != node)


def test_every_revenge_variable_is_a_config_key(stack):
    name, definition = stack
    for service in definition["services"].values():
        for key, value in _environment(service).items():
            if key.startswith("REVENGE_"):
                assert key in CONFIG_ENV, f"{name}: {key}"
                assert value != "", f"{name}: {key} is set but empty"
    # Anywhere in the file, scripts included.
    text = (ROOT / name).read_text()
    assert set(re.findall(r"\bREVENGE_[A-Z0-9_]+", text)) <= CONFIG_ENV | {"REVENGE_IMAGE"}


def test_media_is_read_only_and_the_root_filesystem_too(stack):
    _, definition = stack
    for node in NODES:
        service = definition["services"][node]
        mounts = _volumes(service)
        assert mounts["/media"][1] == "ro"
        assert "/data" in mounts and mounts["/data"][1] == "rw"
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        # Long enough for server.shutdown_grace (25s) and the hand-over.
        assert parse_duration(service["stop_grace_period"]) > 25
    data_volumes = [_volumes(definition["services"][n])["/data"][0] for n in NODES]
    assert len(set(data_volumes)) == 3, "each node keeps its own Raft journal"


def test_compose_takes_secrets_from_the_environment_file():
    definition = _load("docker-compose.yml")
    for node in NODES:
        env = _environment(definition["services"][node])
        for key in SECRET_ENV & set(env):
            # Interpolated from .env, required (":?"), never a literal.
            assert re.search(r"\$\{[A-Z_]+:\?[^}]*\}", env[key]), f"{key} is written inline"
        assert {"REVENGE_RAFT_SECRET", "REVENGE_DATABASE_URL"} <= set(env)
    env_example = (ROOT / ".env.example").read_text()
    for variable in ("RAFT_SECRET", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert re.search(rf"^{variable}=CHANGE-ME$", env_example, re.M)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_stack_reads_secrets_from_swarm_secrets():
    definition = _load("docker-stack.yml")
    declared = definition["secrets"]
    assert all(secret == {"external": True} for secret in declared.values())
    for node in NODES:
        service = definition["services"][node]
        env = _environment(service)
        assert not SECRET_ENV & set(env), "secrets must not be in the environment block"
        script = "\n".join(service["entrypoint"])
        for key in SECRET_ENV:
            assert re.search(rf'{key}="[^"\n]*\$\$\(cat /run/secrets/\w+\)', script), key
        for used in re.findall(r"/run/secrets/(\w+)", script):
            assert used in service["secrets"] and used in declared
        assert script.rstrip().endswith("exec twistd --nodaemon --pidfile= revenge")
    media = definition["volumes"]["media"]["driver_opts"]
    assert media["type"] == "nfs" and "ro" in media["o"].split(",")


def test_the_quick_start_makes_libraries_a_node_can_serve(tmp_path):
    # The commands of docs/deployment/docker-compose.md that make the media
    # folders, run as written; every library they make must probe as ready.
    from revenge.media._libraries import probe_root

    doc = (ROOT / "docs" / "deployment" / "docker-compose.md").read_text()
    block = doc.split("## docker-compose.yml", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("for library"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("done"))
    script = "\n".join(lines[start : end + 1])
    subprocess.run(["bash", "-euc", script], cwd=tmp_path, check=True, timeout=30)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    paths = [
        value
        for key, value in compose["x-revenge-environment"].items()
        if key.startswith("REVENGE_MEDIA_") and key.endswith("_PATHS")
    ]
    assert paths, "no media libraries in docker-compose.yml"
    for path in paths:
        local = tmp_path / "media" / path.removeprefix("/media/")
        assert probe_root(str(local)) is None, f"{local} would keep /readyz at 503"
