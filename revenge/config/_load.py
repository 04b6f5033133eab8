"""
Reading the configuration: defaults < YAML file < REVENGE_* environment <
command-line overrides, then placeholder expansion and validation.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import socket
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from revenge import providers
from revenge.config._duration import format_duration, parse_duration
from revenge.config._errors import ConfigError
from revenge.config._keys import ENV_PREFIX, Key, Schema, schema
from revenge.config._redact import USERINFO_HINT, userinfo_problem
from revenge.config._schema import Config
from revenge.config._secret import SECRET_HINT, secret_problem
from revenge.config._sections import full_schema

DEFAULT_FILE = "revenge.yaml"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_BOOL_WORDS = "true/false, 1/0, yes/no, on/off"

_DATABASE_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://")

_FROM_COMMAND_LINE = "from the command line"


@dataclass(frozen=True)
class _Value:
    value: Any
    # None for the file and defaults; see ConfigError.origin.
    origin: str | None = None
    # False while the key holds its default (no file, variable or option set it).
    given: bool = True


# -- finding and reading the file -------------------------------------------


def resolve_config_path(
    path: str | None = None, *, cwd: str | None = None
) -> str | None:
    """
    The file :func:`load_config` reads: ``path`` (relative to ``cwd`` when
    given), else ``revenge.yaml`` in ``cwd`` (default: the current directory)
    when it exists, else C{None}.
    """
    if path is not None:
        return os.path.join(cwd, path) if cwd is not None else path
    candidate = os.path.join(cwd, DEFAULT_FILE) if cwd is not None else DEFAULT_FILE
    # exists, not isfile: a directory named revenge.yaml is a mistake to report.
    return candidate if os.path.exists(candidate) else None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # Keys merged in with "<<" may be overridden; that is their point.
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                # Unhashable; the base class reports it.
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    # Only the problem and its position: PyYAML's full text quotes the
    # offending line, which may hold a secret.
    if isinstance(error, yaml.MarkedYAMLError):
        words = [part for part in (error.context, error.problem) if part]
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return (", ".join(words) or "invalid YAML") + where
    return type(error).__name__


def _read_file(path: str) -> Mapping[Any, Any]:
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"cannot read config file {path!r}: {reason}") from None
    try:
        document = yaml.load(data, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"config file {path!r} is not valid YAML: {_yaml_problem(error)}"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"config file {path!r}: the top level must be a mapping of keys, "
            f"got {_describe(document, secret=True)}"
        )
    return document


# -- turning raw values into typed ones --------------------------------------


def _describe(value: Any, *, secret: bool) -> str:
    """Name a value's YAML type, showing the value itself unless secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        return "a list"
    elif isinstance(value, dict):
        return "a mapping"
    else:
        return f"a value of type {type(value).__name__}"
    if secret:
        return kind
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{kind} ({shown})"


def _unknown_key(name: str, origin: str | None, known: Schema) -> ConfigError:
    if name in known.by_name or name in known.sections:
        # Only reachable from the file: "server.listen: x" at the top level.
        return ConfigError(
            "unknown key (the file takes nested mappings, not dotted keys)",
            key=name,
            origin=origin,
        )
    candidates = [key.name for key in known.keys] + list(known.sections)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key{hint}", key=name, origin=origin)


def _from_yaml(key: Key, value: Any) -> Any:
    def wrong(expected: str, hint: str = "") -> ConfigError:
        got = _describe(value, secret=key.secret)
        return ConfigError(f"expected {expected}, got {got}{hint}", key=key.name)

    if key.kind == "str":
        if isinstance(value, str):
            return value
        quote = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
        raise wrong("a string", quote)
    if key.kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong("an integer")
    if key.kind == "bool":
        if isinstance(value, bool):
            return value
        raise wrong("a boolean (true or false)")
    if key.kind == "duration":
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as error:
                raise ConfigError(str(error), key=key.name) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                seconds = float(value)
            except OverflowError:
                # A YAML integer too long for a float: refused just below.
                seconds = math.inf
            if not math.isfinite(seconds) or seconds < 0:
                raise ConfigError(
                    f"invalid duration {value!r} (must be a finite number of "
                    "seconds >= 0)",
                    key=key.name,
                )
            return seconds
        raise wrong("a duration such as 30s, 15m, 1h or 90d")
    # key.kind == "list"
    if not isinstance(value, list):
        hint = " (write a YAML list, e.g. [a, b])" if isinstance(value, str) else ""
        raise wrong("a list of strings", hint)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            got = _describe(item, secret=key.secret)
            raise ConfigError(
                f"item {index + 1}: expected a string, got {got}", key=key.name
            )
    return tuple(value)


def _from_text(key: Key, text: str, origin: str) -> Any:
    """Parse a value given as text (environment variable or override)."""
    if key.kind == "str":
        return text
    if key.kind == "list":
        # Comma-separated; "" is the empty list, stray commas are harmless.
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if key.kind == "bool":
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ConfigError(
            f"expected a boolean ({_BOOL_WORDS}), got {text!r}",
            key=key.name,
            origin=origin,
        )
    if key.kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(
                f"expected an integer, got {text!r}", key=key.name, origin=origin
            ) from None
    # key.kind == "duration"
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ConfigError(str(error), key=key.name, origin=origin) from None


def _merge_file(
    mapping: Mapping[Any, Any], prefix: str, values: dict[str, _Value], known: Schema
) -> None:
    for raw_name, value in mapping.items():
        if not isinstance(raw_name, str):
            where = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"keys must be strings, got {_describe(raw_name, secret=False)} "
                f"under {where}",
                key=prefix.rstrip(".") or None,
            )
        name = prefix + raw_name
        if "." in raw_name:
            # Dotted names belong to overrides; in the file one spelling,
            # nesting, keeps a key from being set twice in two ways.
            raise _unknown_key(name, None, known)
        if name in known.sections:
            # A section with all its keys commented out reads as null.
            if value is None:
                continue
            if not isinstance(value, dict):
                children = ", ".join(
                    field.name for field in dataclasses.fields(known.sections[name])
                )
                raise ConfigError(
                    f"expected a mapping with keys {children}, "
                    f"got {_describe(value, secret=True)}",
                    key=name,
                )
            _merge_file(value, name + ".", values, known)
        elif name in known.by_name:
            values[name] = _Value(_from_yaml(known.by_name[name], value))
        else:
            raise _unknown_key(name, None, known)


# -- checking the result ------------------------------------------------------


def _check_endpoint(value: str) -> None:
    # Imported here so that reading config never pulls in more of Twisted
    # than the endpoint parsers; a MemoryReactor parses without listening
    # and without installing the global reactor.
    from twisted.internet import endpoints, testing

    # Both are unannotated in Twisted; typed aliases keep strict mypy quiet
    # without ignores that a laxer configuration would call unused.
    parse: Callable[[Any, str], object] = endpoints.serverFromString
    make_reactor: Callable[[], object] = testing.MemoryReactor
    try:
        parse(make_reactor(), value)
    except Exception as error:
        reason = str(error) or type(error).__name__
        raise ValueError(
            f"not a valid Twisted endpoint string ({value!r}): {reason}"
        ) from None


def _check_listen(value: str) -> None:
    _check_endpoint(value)


def _check_metrics_listen(value: str) -> None:
    if value:
        _check_endpoint(value)


def _check_non_empty(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def _check_database_url(value: str) -> None:
    # Never echo the URL: it may carry a password.
    if value.startswith(_DATABASE_SCHEMES):
        return
    usage = (
        "use sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB or "
        "postgresql+psycopg://..."
    )
    scheme, separator, _ = value.partition("://")
    if separator and scheme and scheme.replace("+", "").isalnum():
        raise ValueError(f"unsupported database URL scheme {scheme!r} ({usage})")
    raise ValueError(f"not a database URL ({usage})")


def _check_s3_endpoint(value: str) -> None:
    if not value:
        return
    scheme, separator, rest = value.partition("://")
    if scheme not in ("http", "https") or not separator or not rest.strip("/"):
        raise ValueError(
            f"expected an http:// or https:// URL or empty for AWS, got {value!r}"
        )


def _check_address(value: str) -> None:
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")


def _check_addresses(value: tuple[str, ...]) -> None:
    for index, item in enumerate(value):
        try:
            _check_address(item)
        except ValueError as error:
            raise ValueError(f"item {index + 1}: {error}") from None


def _check_paths(value: tuple[str, ...]) -> None:
    for index, item in enumerate(value):
        if not item.strip():
            raise ValueError(f"item {index + 1}: must not be empty")


def _check_positive(value: float) -> None:
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {value!r}")


def _check_not_negative(value: float) -> None:
    if not value >= 0:
        raise ValueError(f"must not be negative, got {value!r}")


# Checks on single values, after placeholder expansion. None of these sees a
# secret, so their messages may quote the value.
_CHECKS: dict[str, Callable[[Any], None]] = {
    "server.listen": _check_listen,
    "server.metrics_listen": _check_metrics_listen,
    "server.shutdown_grace": _check_not_negative,
    "server.shutdown_linger": _check_not_negative,
    "server.idle_timeout": _check_positive,
    "data_dir": _check_non_empty,
    "node_id": _check_non_empty,
    "database.url": _check_database_url,
    "storage.backend": _check_non_empty,
    "storage.local.path": _check_non_empty,
    "storage.s3.endpoint": _check_s3_endpoint,
    "storage.avatar_max_bytes": _check_positive,
    "media.movie_paths": _check_paths,
    "media.tv_paths": _check_paths,
    "media.music_paths": _check_paths,
    "election.backend": _check_non_empty,
    "election.step_down_after": _check_positive,
    "raft.bind_addr": _check_address,
    "raft.advertise_addr": _check_address,
    "raft.peers": _check_addresses,
    "raft.data_dir": _check_non_empty,
    "raft.compaction_interval": _check_positive,
    "jobs.cleanup.interval": _check_positive,
    "jobs.cleanup.activity_retention": _check_positive,
}


def _expand(values: dict[str, _Value], known: Schema) -> None:
    """Replace ``{hostname}`` and ``{data_dir}`` in string values in place."""
    hostname = socket.gethostname()
    data_dir = values["data_dir"]
    if "{data_dir}" in data_dir.value:
        raise ConfigError(
            "cannot contain the {data_dir} placeholder",
            key="data_dir",
            origin=data_dir.origin,
        )

    def expand(text: str, data_dir: str) -> str:
        return text.replace("{hostname}", hostname).replace("{data_dir}", data_dir)

    expanded_dir = expand(data_dir.value, "")
    for key in known.keys:
        # Secrets are taken literally: "{" is a fine character in a password.
        if key.secret:
            continue
        current = values[key.name]
        if key.kind == "str":
            new: Any = expand(current.value, expanded_dir)
        elif key.kind == "list":
            new = tuple(expand(item, expanded_dir) for item in current.value)
        else:
            continue
        values[key.name] = dataclasses.replace(current, value=new)


def _check_values(values: Mapping[str, _Value]) -> None:
    for name, check in _CHECKS.items():
        current = values[name]
        try:
            check(current.value)
        except ValueError as error:
            raise ConfigError(str(error), key=name, origin=current.origin) from None


def _check_url_userinfo(values: Mapping[str, _Value], known: Schema) -> None:
    # Every URL key, the sections' of installed distributions too: where an
    # unencoded password ends is anyone's guess, so it could be neither
    # masked when shown nor kept out of a driver's messages (a raw "@" puts
    # the password's tail in the host that "failed to resolve").
    for key in known.keys:
        if not key.url_password:
            continue
        current = values[key.name]
        problem = userinfo_problem(current.value)
        if problem is not None:
            # The problem names a kind of character, never the value.
            raise ConfigError(
                f"{problem}; {USERINFO_HINT}", key=key.name, origin=current.origin
            )


def _settle_defaults(values: dict[str, _Value]) -> None:
    """Defaults that depend on another key, in place (after the single-value checks)."""
    linger = values["server.shutdown_linger"]
    grace = values["server.shutdown_grace"].value
    # The linger is part of the grace: left unset, it follows a short grace
    # down (shutdown_grace: 0 keeps meaning "stop at once") rather than
    # making a configuration that sets the grace alone invalid.
    if not linger.given and linger.value > grace:
        values["server.shutdown_linger"] = dataclasses.replace(linger, value=grace)


def _check_together(values: Mapping[str, _Value]) -> None:
    def value(name: str) -> Any:
        return values[name].value

    if value("server.shutdown_linger") > value("server.shutdown_grace"):
        raise ConfigError(
            f"must not exceed server.shutdown_grace "
            f"({format_duration(value('server.shutdown_grace'))}), got "
            f"{format_duration(value('server.shutdown_linger'))}: the linger is "
            "part of the grace (raise server.shutdown_grace, or set the linger "
            "to 0 to close the listener at once)",
            key="server.shutdown_linger",
            origin=values["server.shutdown_linger"].origin,
        )

    if value("server.metrics_listen") and value("server.metrics_listen") == value(
        "server.listen"
    ):
        raise ConfigError(
            "must differ from server.listen (leave it empty to serve /metrics "
            "on the main listener)",
            key="server.metrics_listen",
            origin=values["server.metrics_listen"].origin,
        )
    if value("election.backend") == "raft" and not value("raft.secret"):
        raise ConfigError(
            "required when election.backend is 'raft': pysyncobj unpickles "
            "whatever arrives on its port, so without a shared secret anyone "
            "who can reach raft.bind_addr can run code in this server "
            "(set REVENGE_RAFT_SECRET to the same random value on every node)",
            key="raft.secret",
        )
    if value("election.backend") == "raft":
        problem = secret_problem(value("raft.secret"))
        if problem is not None:
            # The message names what is wrong, never the value.
            raise ConfigError(
                f"{problem} (it guards code execution on the raft port); {SECRET_HINT}",
                key="raft.secret",
            )
    if value("storage.backend") == "s3":
        if not value("storage.s3.bucket"):
            raise ConfigError(
                "required when storage.backend is 's3'", key="storage.s3.bucket"
            )
        key_id = value("storage.s3.access_key_id")
        secret_key = value("storage.s3.secret_access_key")
        # Both or neither: neither means the default AWS credential chain.
        if bool(key_id) != bool(secret_key):
            missing = "secret_access_key" if key_id else "access_key_id"
            other = "access_key_id" if key_id else "secret_access_key"
            raise ConfigError(
                f"required when storage.s3.{other} is set (set both, or "
                "neither to use the default AWS credential chain)",
                key=f"storage.s3.{missing}",
            )


def _check_providers(values: Mapping[str, _Value]) -> None:
    for name, group in (
        ("storage.backend", providers.STORAGE_GROUP),
        ("election.backend", providers.ELECTION_GROUP),
    ):
        current = values[name]
        try:
            providers.check_name(group, current.value)
        except providers.ProviderError as error:
            raise ConfigError(str(error), key=name, origin=current.origin) from None


def _arguments(
    cls: type[Any], prefix: str, values: Mapping[str, _Value], known: Schema
) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        if name in known.sections:
            section = known.sections[name]
            arguments[field.name] = section(
                **_arguments(section, name + ".", values, known)
            )
        else:
            arguments[field.name] = values[name].value
    return arguments


def _build_plugin_sections(
    values: Mapping[str, _Value], known: Schema
) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for name in known.plugin_sections:
        settings = known.sections[name]
        try:
            built[name] = settings(**_arguments(settings, name + ".", values, known))
        except ValueError as error:
            # A section may check its keys together in __post_init__: a
            # ValueError names the section, a ConfigError (naming one key)
            # passes through as it is.
            raise ConfigError(str(error), key=name) from None
    return built


# -- the public entry points ---------------------------------------------------


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    *,
    cwd: str | None = None,
) -> Config:
    """
    Load, merge, expand and validate the configuration.

    Sources, later ones winning: defaults, the YAML file (``path``, else
    ``revenge.yaml`` in ``cwd`` if present), ``REVENGE_*`` variables of
    ``environ`` (default: ``os.environ``), then ``overrides`` (dotted key →
    text, as given on a command line).

    @raise ConfigError: on the first problem, naming the key or the file.
    """
    known = full_schema()
    if environ is None:
        environ = os.environ
    values = {key.name: _Value(key.default, given=False) for key in known.keys}

    file_path = resolve_config_path(path, cwd=cwd)
    if file_path is not None:
        _merge_file(_read_file(file_path), "", values, known)

    for key in known.keys:
        if key.env in environ:
            origin = f"from environment variable {key.env}"
            values[key.name] = _Value(
                _from_text(key, environ[key.env], origin), origin
            )

    for name, text in (overrides or {}).items():
        override_key = known.by_name.get(name)
        if override_key is None:
            raise _unknown_key(name, _FROM_COMMAND_LINE, known)
        values[name] = _Value(
            _from_text(override_key, text, _FROM_COMMAND_LINE), _FROM_COMMAND_LINE
        )

    _expand(values, known)
    _check_values(values)
    _check_url_userinfo(values, known)
    _settle_defaults(values)
    _check_together(values)
    _check_providers(values)
    sections = _build_plugin_sections(values, known)
    return Config(**_arguments(Config, "", values, known), sections=sections)


def config_keys(*, sections: bool = False) -> list[tuple[str, str]]:
    """
    Every key of Revenge's own as ``(dotted key, environment variable)``;
    with ``sections``, followed by the keys of the sections installed
    distributions declare (docs/plugins.md).
    """
    known = full_schema() if sections else schema()
    return [(key.name, key.env) for key in known.keys]


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """
    The ``REVENGE_*`` variables of ``environ`` that set no key, sorted.

    They are ignored rather than refused: Kubernetes defines
    ``REVENGE_SERVICE_HOST``, ``REVENGE_PORT`` and more for a Service named
    ``revenge``.
    """
    if environ is None:
        environ = os.environ
    known = full_schema().by_env
    return sorted(
        name for name in environ if name.startswith(ENV_PREFIX) and name not in known
    )
