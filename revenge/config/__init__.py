"""
Revenge's configuration: a YAML file overridden by ``REVENGE_*`` environment
variables, checked in full before anything starts.

Use :func:`load_config` to get a :class:`Config`; it expands the
``{data_dir}`` and ``{hostname}`` placeholders that ``Config()`` defaults
still contain.
"""

from revenge.config._duration import format_duration, parse_duration
from revenge.config._errors import ConfigError
from revenge.config._load import (
    DEFAULT_FILE,
    config_keys,
    load_config,
    resolve_config_path,
    unknown_environment,
)
from revenge.config._redact import redact_url, redacted
from revenge.config._schema import (
    CleanupJobConfig,
    Config,
    DatabaseConfig,
    ElectionConfig,
    JobsConfig,
    LocalStorageConfig,
    MediaConfig,
    RaftConfig,
    S3StorageConfig,
    ServerConfig,
    StorageConfig,
)

__all__ = [
    "DEFAULT_FILE",
    "CleanupJobConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "ElectionConfig",
    "JobsConfig",
    "LocalStorageConfig",
    "MediaConfig",
    "RaftConfig",
    "S3StorageConfig",
    "ServerConfig",
    "StorageConfig",
    "config_keys",
    "format_duration",
    "load_config",
    "parse_duration",
    "redact_url",
    "redacted",
    "resolve_config_path",
    "unknown_environment",
]
