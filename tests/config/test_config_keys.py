"""config_keys(): every key of the tree, each settable through its variable."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from revenge import providers
from revenge.config import Config, config_keys, load_config
from revenge.config._schema import SECRET


def leaves(cls: type[Any], prefix: str = "") -> list[str]:
    """Dotted names of the tree's leaves, found independently of the loader."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            assert isinstance(hint, type)
            found.extend(leaves(hint, f"{prefix}{field.name}."))
        else:
            found.append(prefix + field.name)
    return found


def secret_leaves(cls: type[Any], prefix: str = "") -> set[str]:
    hints = typing.get_type_hints(cls)
    found: set[str] = set()
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            assert isinstance(hint, type)
            found |= secret_leaves(hint, f"{prefix}{field.name}.")
        elif field.metadata.get(SECRET):
            found.add(prefix + field.name)
    return found


# Long and random enough for revenge.config.secret_problem.
STRONG_SECRET = "7Vq2hZt9wKx3mPb0LrYcN5sJdE8uGfA1oTiW4kQ"

# A valid value other than the default for every key, as environment text,
# and the value the Config then holds.
SAMPLES: dict[str, tuple[str, object]] = {
    "server.listen": ("tcp:9000", "tcp:9000"),
    "server.metrics_listen": ("tcp:9090", "tcp:9090"),
    "server.shutdown_grace": ("5s", 5.0),
    "server.shutdown_linger": ("1s", 1.0),
    "server.idle_timeout": ("2m", 120.0),
    "server.control_socket": ("/run/revenge.sock", "/run/revenge.sock"),
    "data_dir": ("/srv", "/srv"),
    "node_id": ("n7", "n7"),
    "database.url": ("postgresql://u@db/x", "postgresql://u@db/x"),
    "storage.backend": ("s3", "s3"),
    "storage.local.path": ("/files", "/files"),
    "storage.s3.endpoint": ("http://minio:9000", "http://minio:9000"),
    "storage.s3.region": ("eu-west-1", "eu-west-1"),
    "storage.s3.bucket": ("bucket", "bucket"),
    "storage.s3.access_key_id": ("id", "id"),
    "storage.s3.secret_access_key": ("key", "key"),
    "storage.s3.use_path_style": ("on", True),
    "storage.avatar_max_bytes": ("77", 77),
    "media.movie_paths": ("/m1,/m2", ("/m1", "/m2")),
    "media.tv_paths": ("/tv", ("/tv",)),
    "media.music_paths": ("/music", ("/music",)),
    "election.backend": ("raft", "raft"),
    "election.step_down_after": ("5s", 5.0),
    "raft.bind_addr": ("0.0.0.0:7100", "0.0.0.0:7100"),
    "raft.advertise_addr": ("me:7100", "me:7100"),
    "raft.peers": ("a:7100,b:7100", ("a:7100", "b:7100")),
    "raft.data_dir": ("/raft", "/raft"),
    "raft.secret": (STRONG_SECRET, STRONG_SECRET),
    "raft.compaction_interval": ("10m", 600.0),
    "jobs.cleanup.interval": ("2h", 7200.0),
    "jobs.cleanup.activity_retention": ("30d", 30 * 86400.0),
}


def get(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_every_leaf_is_a_key() -> None:
    assert [name for name, _ in config_keys()] == leaves(Config)


def test_design_keys() -> None:
    # The table of docs/design.md "Configuration", expanded.
    assert {name for name, _ in config_keys()} == set(SAMPLES)


def test_secrets_are_marked() -> None:
    assert secret_leaves(Config) == {
        "raft.secret",
        "storage.s3.access_key_id",
        "storage.s3.secret_access_key",
    }


def test_environment_names() -> None:
    keys = config_keys()
    assert ("storage.s3.bucket", "REVENGE_STORAGE_S3_BUCKET") in keys
    assert ("jobs.cleanup.activity_retention", "REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION") in keys
    for name, env in keys:
        assert env == "REVENGE_" + name.upper().replace(".", "_")
    assert len({env for _, env in keys}) == len(keys)


@pytest.mark.parametrize("name, env", config_keys())
def test_each_variable_sets_its_key(
    name: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "check_name", lambda group, value: None)
    text, expected = SAMPLES[name]
    environ = {env: text}
    # Keys that need company to be valid get it.
    environ.setdefault("REVENGE_RAFT_SECRET", STRONG_SECRET)
    environ.setdefault("REVENGE_STORAGE_S3_BUCKET", "bucket")
    if name in ("storage.s3.access_key_id", "storage.s3.secret_access_key"):
        environ["REVENGE_STORAGE_S3_ACCESS_KEY_ID"] = "id"
        environ["REVENGE_STORAGE_S3_SECRET_ACCESS_KEY"] = "key"
    config = load_config(environ=environ)
    assert get(config, name) == expected
