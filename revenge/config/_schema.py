"""
The configuration tree: frozen dataclasses whose fields are exactly the keys
of docs/design.md's "Configuration" table.

Field metadata tells the loader how to read and show a value; the helpers
:func:`secret_setting`, :func:`duration_setting` and :func:`url_setting` set
it, for Revenge's own keys and for the sections of installed distributions
alike (docs/plugins.md):

- ``secret``: never printed; :func:`revenge.config.redacted` shows ``***``.
- ``duration``: a float of seconds, written as ``30s``, ``1h``, ``90d``.
- ``url_password``: a URL whose password and secret libpq query parameters
  are redacted; its user name and password must be percent-encoded.

String defaults may contain ``{data_dir}`` and ``{hostname}``;
:func:`revenge.config.load_config` expands them, so build a ``Config`` with
``load_config`` rather than by calling ``Config()`` directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

SECRET = "secret"
DURATION = "duration"
URL_PASSWORD = "url_password"

_SectionT = TypeVar("_SectionT")


def secret_setting(default: str = "") -> Any:
    """A string field that is never shown: ``***`` in ``revenge config check``, absent from repr."""
    # repr=False: a Config that ends up in a traceback or a log line must not
    # carry the secret with it.
    return field(default=default, repr=False, metadata={SECRET: True})


def duration_setting(seconds: float) -> Any:
    """A float field of seconds, written as ``30s``, ``15m``, ``1h`` or ``90d``."""
    return field(default=seconds, metadata={DURATION: True})


def url_setting(default: str = "") -> Any:
    """
    A string field holding a URL whose password and secret libpq parameters
    (``?sslpassword=``…) are shown as ``***``; loading refuses one whose user
    name or password is not percent-encoded.
    """
    return field(default=default, repr=False, metadata={URL_PASSWORD: True})


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "tcp:8096"
    # Empty means /metrics is served on the main listener.
    metrics_listen: str = ""
    shutdown_grace: float = duration_setting(25.0)
    # After SIGTERM the listener goes on accepting this long (every response
    # saying Connection: close, /readyz 503) before it closes: connections
    # already in the kernel's backlog, and clients that have not yet seen the
    # 503, are served instead of reset. Part of shutdown_grace, never more
    # (left unset, it is at most shutdown_grace; set above it, it is refused).
    shutdown_linger: float = duration_setting(2.0)
    # Connections idle this long are closed; keep it above the idle timeout
    # of any load balancer in front (AWS ALB: 60 s), or it may reuse a
    # connection just as this end closes it.
    idle_timeout: float = duration_setting(75.0)
    # A Unix socket, readable by this node's user only, on which the node
    # answers its own cluster status without a token: for `revenge cluster
    # status` run on the node itself (kubectl exec, docker compose exec).
    # Empty: none.
    control_socket: str = "{data_dir}/revenge.sock"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = url_setting("sqlite:///{data_dir}/revenge.db")


@dataclass(frozen=True)
class LocalStorageConfig:
    path: str = "{data_dir}/storage"


@dataclass(frozen=True)
class S3StorageConfig:
    # Empty means AWS itself.
    endpoint: str = ""
    region: str = "us-east-1"
    bucket: str = ""
    access_key_id: str = secret_setting()
    secret_access_key: str = secret_setting()
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
    # A leader whose database (or storage) has failed for this long hands
    # leadership to a node that can reach it; a node in that state does not
    # seek leadership (docs/jobs.md, "Leadership follows the work").
    step_down_after: float = duration_setting(2.0)


@dataclass(frozen=True)
class RaftConfig:
    bind_addr: str = "0.0.0.0:7000"
    advertise_addr: str = "{hostname}:7000"
    peers: tuple[str, ...] = ()
    data_dir: str = "{data_dir}/raft"
    secret: str = secret_setting()
    # How often the raft log is compacted into {raft.data_dir}/snapshot.json.
    compaction_interval: float = duration_setting(300.0)


@dataclass(frozen=True)
class CleanupJobConfig:
    interval: float = duration_setting(3600.0)
    activity_retention: float = duration_setting(90 * 86400.0)


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
    # The settings of the sections that installed distributions declare
    # (entry point group ``revenge.config``, docs/plugins.md), by section name.
    # Init-only, not a field: Config's fields are exactly Revenge's own keys,
    # whatever is installed. (So dataclasses.replace() does not carry them.)
    sections: InitVar[Mapping[str, Any] | None] = None
    # Set per instance by __post_init__; declared here so that it is no field.
    _sections: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __post_init__(self, sections: Mapping[str, Any] | None) -> None:
        # Frozen: object.__setattr__ is how a frozen dataclass sets up derived state.
        object.__setattr__(self, "_sections", MappingProxyType(dict(sections or {})))

    def section(self, name: str, kind: type[_SectionT]) -> _SectionT:
        """
        The settings of the section ``name``, an instance of ``kind`` (the
        frozen dataclass the section's entry point names). A Config that
        :func:`revenge.config.load_config` did not fill in (one built by hand,
        in tests) holds the defaults, as it does for Revenge's own keys.
        """
        settings = self._sections.get(name)
        if settings is None:
            return kind()
        if not isinstance(settings, kind):
            raise TypeError(
                f"config section {name!r} holds {type(settings).__name__}, "
                f"not {kind.__name__}"
            )
        return settings

    def section_names(self) -> list[str]:
        """The names of the sections loaded beside Revenge's own keys, sorted."""
        return sorted(self._sections)

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare fields only, not the sections.
        if not isinstance(other, Config) or other.__class__ is not self.__class__:
            return NotImplemented
        return all(
            getattr(self, each.name) == getattr(other, each.name)
            for each in dataclasses.fields(self)
        ) and self._sections == other._sections
