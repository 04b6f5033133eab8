"""
Revenge's configuration: a YAML file overridden by ``REVENGE_*`` environment
variables, checked in full before anything starts.

Use :func:`load_config` to get a :class:`Config`; it expands the
``{data_dir}`` and ``{hostname}`` placeholders that ``Config()`` defaults
still contain. Installed distributions add sections of their own through the
entry point group ``revenge.config`` (:data:`SECTION_GROUP`, docs/plugins.md);
a provider reads its section with :meth:`Config.section`.
"""

from revenge.config._errors import ConfigError
from revenge.config._load import config_keys, load_config, resolve_config_path, unknown_environment
from revenge.config._redact import (
    SECRET_URL_PARAMETERS,
    USERINFO_HINT,
    redact_text,
    redact_url,
    redacted,
    userinfo_problem,
)
from revenge.config._schema import Config, duration_setting, secret_setting, url_setting
from revenge.config._sections import SECTION_GROUP
from revenge.config._secret import SECRET_HINT, generate_secret, secret_problem

__all__ = [
    "Config",
    "ConfigError",
    "SECRET_HINT",
    "SECRET_URL_PARAMETERS",
    "SECTION_GROUP",
    "USERINFO_HINT",
    "config_keys",
    "duration_setting",
    "generate_secret",
    "load_config",
    "redact_text",
    "redact_url",
    "redacted",
    "resolve_config_path",
    "secret_problem",
    "secret_setting",
    "unknown_environment",
    "url_setting",
    "userinfo_problem",
]
