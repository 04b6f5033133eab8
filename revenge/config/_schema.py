"""
The configuration tree: frozen dataclasses whose fields are exactly the keys
of DESIGN.md's "Configuration" table.

Field metadata tells the loader how to read and show a value:

- ``secret``: never printed; :func:`revenge.config.redacted` shows ``***``.
- ``duration``: a float of seconds, written as ``30s``, ``1h``, ``90d``.
- ``url_password``: a URL whose userinfo password is redacted.

String defaults may contain ``{data_dir}`` and ``{hostname}``;
:func:`revenge.config.load_config` expands them, so build a ``Config`` with
``load_config`` rather than by calling ``Config()`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECRET = "secret"
DURATION = "duration"
URL_PASSWORD = "url_password"


def _secret(default: str = "") -> Any:
    # repr=False: a Config that ends up in a traceback or a log line must not
    # carry the secret with it.
    return field(default=default, repr=False, metadata={SECRET: True})


def _duration(seconds: float) -> Any:
    return field(default=seconds, metadata={DURATION: True})


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "tcp:8096"
    # Empty means /metrics is served on the main listener.
    metrics_listen: str = ""
    shutdown_grace: float = _duration(25.0)


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = field(
        default="sqlite:///{data_dir}/revenge.db", repr=False, metadata={URL_PASSWORD: True}
    )


@dataclass(frozen=True)
class LocalStorageConfig:
    path: str = "{data_dir}/storage"


@dataclass(frozen=True)
class S3StorageConfig:
    # Empty means AWS itself.
    endpoint: str = ""
    region: str = "us-east-1"
    bucket: str = ""
    access_key_id: str = _secret()
    secret_access_key: str = _secret()
    use_path_style: bool = False


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "local"
    local: LocalStorageConfig = field(default_factory=LocalStorageConfig)
    s3: S3StorageConfig = field(default_factory=S3StorageConfig)
    avatar_max_bytes: int = 5242880


@dataclass(frozen=True)
class MediaConfig:
    movie_paths: tuple[str, ...] = ()
    tv_paths: tuple[str, ...] = ()
    music_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ElectionConfig:
    backend: str = "standalone"


@dataclass(frozen=True)
class RaftConfig:
    bind_addr: str = "0.0.0.0:7000"
    advertise_addr: str = "{hostname}:7000"
    peers: tuple[str, ...] = ()
    data_dir: str = "{data_dir}/raft"
    secret: str = _secret()


@dataclass(frozen=True)
class CleanupJobConfig:
    interval: float = _duration(3600.0)
    activity_retention: float = _duration(90 * 86400.0)


@dataclass(frozen=True)
class JobsConfig:
    cleanup: CleanupJobConfig = field(default_factory=CleanupJobConfig)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    data_dir: str = "./data"
    node_id: str = "{hostname}"
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    election: ElectionConfig = field(default_factory=ElectionConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
