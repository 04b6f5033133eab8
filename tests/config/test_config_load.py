"""Loading configuration: sources, precedence, placeholders and every error path."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from revenge import providers
from revenge.config import (
    Config,
    ConfigError,
    generate_secret,
    load_config,
    resolve_config_path,
    secret_problem,
    unknown_environment,
)

WriteYaml = Callable[[str], str]

SECRET = "s3cr3t-Value-that-must-not-leak-7Vq2hZt9wKx3mPb0"


def error_for(
    path: str | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ if environ is not None else {}, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


@pytest.fixture
def all_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend s3 and raft are installed, whatever this checkout registers."""
    monkeypatch.setattr(providers, "check_name", lambda group, name: None)


# -- defaults, sources and precedence -------------------------------------------


def test_defaults() -> None:
    config = load_config(environ={})
    assert config.server.listen == "tcp:8096"
    assert config.server.metrics_listen == ""
    assert config.server.shutdown_grace == 25.0
    assert config.data_dir == "./data"
    assert config.node_id == "node-a"
    assert config.database.url == "sqlite:///./data/revenge.db"
    assert config.storage.backend == "local"
    assert config.storage.local.path == "./data/storage"
    assert config.storage.s3.endpoint == ""
    assert config.storage.s3.region == "us-east-1"
    assert config.storage.s3.bucket == ""
    assert config.storage.s3.access_key_id == ""
    assert config.storage.s3.secret_access_key == ""
    assert config.storage.s3.use_path_style is False
    assert config.storage.avatar_max_bytes == 5242880
    assert config.media.movie_paths == ()
    assert config.media.tv_paths == ()
    assert config.media.music_paths == ()
    assert config.election.backend == "standalone"
    assert config.raft.bind_addr == "0.0.0.0:7000"
    assert config.raft.advertise_addr == "node-a:7000"
    assert config.raft.peers == ()
    assert config.raft.data_dir == "./data/raft"
    assert config.raft.secret == ""
    assert config.jobs.cleanup.interval == 3600.0
    assert config.jobs.cleanup.activity_retention == 90 * 86400.0


def test_config_is_frozen() -> None:
    config = load_config(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.listen = "tcp:1"  # type: ignore[misc]


def test_empty_file_means_defaults(write_yaml: WriteYaml) -> None:
    assert load_config(write_yaml(""), {}) == load_config(environ={})


def test_comment_only_file_means_defaults(write_yaml: WriteYaml) -> None:
    assert load_config(write_yaml("# nothing here\n"), {}) == load_config(environ={})


def test_file_values(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
server:
  listen: "tcp:9000:interface=127.0.0.1"
  metrics_listen: tcp:9090
  shutdown_grace: 10s
data_dir: /var/lib/revenge
node_id: revenge-0
database:
  url: postgresql://revenge:pw@db/revenge
storage:
  avatar_max_bytes: 1000
  s3:
    use_path_style: true
media:
  movie_paths: [/media/movies, /media/more]
  tv_paths:
    - /media/tv
jobs:
  cleanup:
    interval: 90
    activity_retention: 30d
"""
    )
    config = load_config(path, {})
    assert config.server.listen == "tcp:9000:interface=127.0.0.1"
    assert config.server.metrics_listen == "tcp:9090"
    assert config.server.shutdown_grace == 10.0
    assert config.data_dir == "/var/lib/revenge"
    assert config.node_id == "revenge-0"
    assert config.database.url == "postgresql://revenge:pw@db/revenge"
    assert config.storage.avatar_max_bytes == 1000
    assert config.storage.s3.use_path_style is True
    assert config.media.movie_paths == ("/media/movies", "/media/more")
    assert config.media.tv_paths == ("/media/tv",)
    assert config.media.music_paths == ()
    assert config.jobs.cleanup.interval == 90.0
    assert config.jobs.cleanup.activity_retention == 30 * 86400.0
    # Placeholders follow the file's data_dir.
    assert config.storage.local.path == "/var/lib/revenge/storage"
    assert config.raft.data_dir == "/var/lib/revenge/raft"


def test_null_section_is_empty(write_yaml: WriteYaml) -> None:
    path = write_yaml("storage:\n  s3:\n  local:\n")
    assert load_config(path, {}) == load_config(environ={})


def test_revenge_yaml_in_cwd_is_used(isolated: Path) -> None:
    (isolated / "revenge.yaml").write_text("node_id: from-cwd\n")
    assert load_config(environ={}).node_id == "from-cwd"
    assert resolve_config_path() == "revenge.yaml"


def test_cwd_argument(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "revenge.yaml").write_text("node_id: from-elsewhere\n")
    (other / "named.yaml").write_text("node_id: named\n")
    assert load_config(environ={}).node_id == "node-a"
    assert load_config(environ={}, cwd=str(other)).node_id == "from-elsewhere"
    assert load_config("named.yaml", {}, cwd=str(other)).node_id == "named"
    assert resolve_config_path(cwd=str(other)) == os.path.join(str(other), "revenge.yaml")
    assert resolve_config_path(cwd=str(tmp_path)) is None


def test_environment_over_file(write_yaml: WriteYaml) -> None:
    path = write_yaml("server:\n  listen: tcp:9000\nnode_id: from-file\n")
    config = load_config(path, {"REVENGE_SERVER_LISTEN": "tcp:9001"})
    assert config.server.listen == "tcp:9001"
    assert config.node_id == "from-file"


def test_overrides_over_environment(write_yaml: WriteYaml) -> None:
    path = write_yaml("server:\n  listen: tcp:9000\n")
    config = load_config(
        path,
        {"REVENGE_SERVER_LISTEN": "tcp:9001", "REVENGE_NODE_ID": "from-env"},
        {"server.listen": "tcp:9002"},
    )
    assert config.server.listen == "tcp:9002"
    assert config.node_id == "from-env"


def test_overrides_are_parsed_like_environment() -> None:
    config = load_config(
        environ={},
        overrides={
            "jobs.cleanup.interval": "15m",
            "media.music_paths": "/a, /b",
            "storage.s3.use_path_style": "yes",
            "storage.avatar_max_bytes": "42",
        },
    )
    assert config.jobs.cleanup.interval == 900.0
    assert config.media.music_paths == ("/a", "/b")
    assert config.storage.s3.use_path_style is True
    assert config.storage.avatar_max_bytes == 42


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVENGE_NODE_ID", "from-os-environ")
    assert load_config().node_id == "from-os-environ"


def test_environment_types() -> None:
    config = load_config(
        environ={
            "REVENGE_STORAGE_S3_BUCKET": "bucket",
            "REVENGE_STORAGE_S3_USE_PATH_STYLE": "TRUE",
            "REVENGE_STORAGE_AVATAR_MAX_BYTES": " 1024 ",
            "REVENGE_SERVER_SHUTDOWN_GRACE": "1m30s",
            "REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION": "7d",
        }
    )
    assert config.storage.s3.bucket == "bucket"
    assert config.storage.s3.use_path_style is True
    assert config.storage.avatar_max_bytes == 1024
    assert config.server.shutdown_grace == 90.0
    assert config.jobs.cleanup.activity_retention == 7 * 86400.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ()),
        ("/a", ("/a",)),
        ("/a,/b", ("/a", "/b")),
        (" /a , /b ,", ("/a", "/b")),
        (",,/a,,", ("/a",)),
        ("  ", ()),
    ],
)
def test_lists_from_environment(text: str, expected: tuple[str, ...]) -> None:
    config = load_config(environ={"REVENGE_MEDIA_TV_PATHS": text})
    assert config.media.tv_paths == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("true", True), ("True", True), ("1", True), ("yes", True), ("ON", True),
        ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
    ],
)  # fmt: skip
def test_bools_from_environment(text: str, expected: bool) -> None:
    config = load_config(environ={"REVENGE_STORAGE_S3_USE_PATH_STYLE": text})
    assert config.storage.s3.use_path_style is expected


def test_unknown_environment_is_ignored_and_listed() -> None:
    environ = {
        "REVENGE_SERVICE_HOST": "10.0.0.1",
        "REVENGE_PORT": "tcp://10.0.0.1:80",
        "REVENGE_NODE_ID": "n1",
        "OTHER": "x",
    }
    assert load_config(environ=environ).node_id == "n1"
    assert unknown_environment(environ) == ["REVENGE_PORT", "REVENGE_SERVICE_HOST"]


def test_unknown_environment_defaults_to_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REVENGE_SOMETHING_ELSE", "1")
    assert "REVENGE_SOMETHING_ELSE" in unknown_environment()


def test_reading_config_does_not_install_a_reactor(tmp_path: Path) -> None:
    # twistd picks the reactor after the plugin has read the configuration.
    # A fresh interpreter, because pytest-twisted installs one in this one.
    script = (
        "import sys\n"
        "from revenge.config import load_config\n"
        "load_config(environ={'REVENGE_SERVER_METRICS_LISTEN': 'tcp:9090'})\n"
        "sys.exit('twisted.internet.reactor' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# -- placeholders -------------------------------------------------------------


def test_placeholders_follow_data_dir_from_environment() -> None:
    config = load_config(environ={"REVENGE_DATA_DIR": "/srv/{hostname}"})
    assert config.data_dir == "/srv/node-a"
    assert config.database.url == "sqlite:////srv/node-a/revenge.db"
    assert config.storage.local.path == "/srv/node-a/storage"
    assert config.raft.data_dir == "/srv/node-a/raft"


def test_placeholders_in_any_string_and_list(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "data_dir: /d\n"
        "node_id: '{hostname}-x'\n"
        "media:\n  movie_paths: ['{data_dir}/movies']\n"
        "raft:\n  peers: ['{hostname}:7001']\n"
    )
    config = load_config(path, {})
    assert config.node_id == "node-a-x"
    assert config.media.movie_paths == ("/d/movies",)
    assert config.raft.peers == ("node-a:7001",)


def test_secrets_are_not_expanded(all_providers: None) -> None:
    config = load_config(
        environ={
            "REVENGE_ELECTION_BACKEND": "raft",
            "REVENGE_RAFT_SECRET": "{hostname}{data_dir}" + SECRET,
        }
    )
    assert config.raft.secret == "{hostname}{data_dir}" + SECRET


def test_data_dir_cannot_refer_to_itself() -> None:
    error = error_for(environ={"REVENGE_DATA_DIR": "{data_dir}/x"})
    assert error.key == "data_dir"


# -- file errors ----------------------------------------------------------------


def test_missing_explicit_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    error = error_for(missing)
    assert error.key is None
    assert missing in str(error)
    assert "does not exist" in str(error)


def test_unreadable_file(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root.
    error = error_for(str(tmp_path))
    assert error.key is None
    assert str(tmp_path) in str(error)


def test_default_file_that_is_a_directory(isolated: Path) -> None:
    (isolated / "revenge.yaml").mkdir()
    error = error_for()
    assert error.key is None
    assert "revenge.yaml" in str(error)


def test_invalid_yaml(write_yaml: WriteYaml) -> None:
    path = write_yaml(f"raft:\n  secret: {SECRET}\n  peers: [a, b\n")
    error = error_for(path)
    assert error.key is None
    assert path in str(error)
    assert "not valid YAML" in str(error)
    assert "line" in str(error)
    assert SECRET not in str(error)


def test_invalid_yaml_tab(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("server:\n\tlisten: tcp:1\n"))
    assert error.key is None
    assert "not valid YAML" in str(error)


def test_duplicate_key_in_file(write_yaml: WriteYaml) -> None:
    path = write_yaml("storage:\n  backend: local\nstorage:\n  avatar_max_bytes: 1\n")
    error = error_for(path)
    assert "duplicate key 'storage'" in str(error)
    assert "line 3" in str(error)


def test_yaml_merge_keys_may_override(write_yaml: WriteYaml) -> None:
    path = write_yaml("server:\n  <<: {listen: 'tcp:1'}\n  listen: 'tcp:2'\n")
    assert load_config(path, {}).server.listen == "tcp:2"


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "a list"), ("just text\n", "a string")])
def test_top_level_not_a_mapping(write_yaml: WriteYaml, text: str, kind: str) -> None:
    path = write_yaml(text)
    error = error_for(path)
    assert error.key is None
    assert path in str(error)
    assert "top level must be a mapping" in str(error)
    assert kind in str(error)


# -- unknown keys -----------------------------------------------------------------


def test_unknown_key_with_suggestion(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("server:\n  lisen: tcp:1\n"))
    assert error.key == "server.lisen"
    assert str(error) == (
        "config key 'server.lisen': unknown key (did you mean 'server.listen'?)"
    )


def test_unknown_nested_key(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("storage:\n  s3:\n    buckt: x\n"))
    assert error.key == "storage.s3.buckt"
    assert "did you mean 'storage.s3.bucket'?" in str(error)


def test_unknown_top_level_section(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("sever:\n  listen: tcp:1\n"))
    assert error.key == "sever"
    assert "did you mean 'server'?" in str(error)


def test_unknown_key_without_suggestion(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("zzzzzz: 1\n"))
    assert str(error) == "config key 'zzzzzz': unknown key"


def test_unknown_key_never_shows_its_value(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml(f"raft:\n  secrett: {SECRET}\n"))
    assert error.key == "raft.secrett"
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    "text, key",
    [
        ("server.listen: tcp:1\n", "server.listen"),
        ("storage:\n  s3.bucket: b\n", "storage.s3.bucket"),
        ("jobs.cleanup:\n  interval: 1h\n", "jobs.cleanup"),
    ],
)
def test_dotted_key_in_file(write_yaml: WriteYaml, text: str, key: str) -> None:
    error = error_for(write_yaml(text))
    assert error.key == key
    assert "nested" in str(error)


def test_non_string_key(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("server:\n  8096: x\n"))
    assert error.key == "server"
    assert "keys must be strings" in str(error)


def test_unknown_override_key() -> None:
    error = error_for(overrides={"server.lisen": "tcp:1"})
    assert error.key == "server.lisen"
    assert "from the command line" in str(error)
    assert "did you mean 'server.listen'?" in str(error)


def test_override_cannot_name_a_section() -> None:
    error = error_for(overrides={"server": "tcp:1"})
    assert error.key == "server"


# -- wrong types from the file ----------------------------------------------------


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("server:\n  listen: 8096\n", "server.listen", "expected a string, got an integer"),
        ("node_id: true\n", "node_id", "expected a string, got a boolean"),
        ("data_dir: [a]\n", "data_dir", "expected a string, got a list"),
        ("data_dir:\n", "data_dir", "expected a string, got null"),
        (
            "storage:\n  avatar_max_bytes: '5'\n",
            "storage.avatar_max_bytes",
            "expected an integer, got a string",
        ),
        (
            "storage:\n  avatar_max_bytes: true\n",
            "storage.avatar_max_bytes",
            "expected an integer, got a boolean",
        ),
        (
            "storage:\n  avatar_max_bytes: 1.5\n",
            "storage.avatar_max_bytes",
            "expected an integer, got a number",
        ),
        (
            "storage:\n  s3:\n    use_path_style: 'true'\n",
            "storage.s3.use_path_style",
            "expected a boolean",
        ),
        (
            "storage:\n  s3:\n    use_path_style: 1\n",
            "storage.s3.use_path_style",
            "expected a boolean",
        ),
        (
            "media:\n  tv_paths: /media/tv\n",
            "media.tv_paths",
            "expected a list of strings, got a string",
        ),
        ("media:\n  tv_paths: [/a, 3]\n", "media.tv_paths", "item 2: expected a string"),
        ("media:\n  tv_paths: {a: b}\n", "media.tv_paths", "expected a list of strings"),
        (
            "jobs:\n  cleanup:\n    interval: soon\n",
            "jobs.cleanup.interval",
            "invalid duration 'soon'",
        ),
        (
            "jobs:\n  cleanup:\n    interval: true\n",
            "jobs.cleanup.interval",
            "expected a duration",
        ),
        (
            "jobs:\n  cleanup:\n    interval: -5\n",
            "jobs.cleanup.interval",
            "invalid duration -5",
        ),
        ("jobs:\n  cleanup:\n    interval: .inf\n", "jobs.cleanup.interval", "finite"),
        ("server: tcp:8096\n", "server", "expected a mapping with keys listen"),
        ("jobs:\n  cleanup: [1]\n", "jobs.cleanup", "expected a mapping"),
    ],
)
def test_wrong_type_in_file(
    write_yaml: WriteYaml, text: str, key: str, expected: str
) -> None:
    error = error_for(write_yaml(text))
    assert error.key == key
    assert str(error).startswith(f"config key {key!r}: ")
    assert expected in str(error)


def test_wrong_type_for_secret_hides_value(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("raft:\n  secret: 918273645\n"))
    assert error.key == "raft.secret"
    assert "expected a string, got an integer" in str(error)
    assert "918273645" not in str(error)


def test_secret_list_item_type_hides_value(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("storage:\n  s3:\n    secret_access_key: [918273645]\n"))
    assert error.key == "storage.s3.secret_access_key"
    assert "918273645" not in str(error)


def test_yaml_number_is_a_duration_in_seconds(write_yaml: WriteYaml) -> None:
    path = write_yaml("server:\n  shutdown_grace: 2.5\n")
    assert load_config(path, {}).server.shutdown_grace == 2.5


# -- wrong types from the environment -------------------------------------------


def test_bad_bool_names_key_and_variable() -> None:
    error = error_for(environ={"REVENGE_STORAGE_S3_USE_PATH_STYLE": "maybe"})
    assert error.key == "storage.s3.use_path_style"
    assert error.origin == "from environment variable REVENGE_STORAGE_S3_USE_PATH_STYLE"
    assert str(error) == (
        "config key 'storage.s3.use_path_style' (from environment variable "
        "REVENGE_STORAGE_S3_USE_PATH_STYLE): expected a boolean "
        "(true/false, 1/0, yes/no, on/off), got 'maybe'"
    )


@pytest.mark.parametrize("text", ["", "ten", "1.5", "0x10"])
def test_bad_int_from_environment(text: str) -> None:
    error = error_for(environ={"REVENGE_STORAGE_AVATAR_MAX_BYTES": text})
    assert error.key == "storage.avatar_max_bytes"
    assert "REVENGE_STORAGE_AVATAR_MAX_BYTES" in str(error)
    assert "expected an integer" in str(error)


@pytest.mark.parametrize("text", ["", "soon", "-1s", "5 parsecs"])
def test_bad_duration_from_environment(text: str) -> None:
    error = error_for(environ={"REVENGE_JOBS_CLEANUP_INTERVAL": text})
    assert error.key == "jobs.cleanup.interval"
    assert "REVENGE_JOBS_CLEANUP_INTERVAL" in str(error)


# -- value checks -------------------------------------------------------------------


def test_bad_endpoint() -> None:
    error = error_for(environ={"REVENGE_SERVER_LISTEN": "tcpp:80"})
    assert error.key == "server.listen"
    assert str(error) == (
        "config key 'server.listen' (from environment variable "
        "REVENGE_SERVER_LISTEN): not a valid Twisted endpoint string "
        "('tcpp:80'): Unknown endpoint type: 'tcpp'"
    )


def test_bad_endpoint_from_file(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("server:\n  listen: 'tcpp:80'\n"))
    assert str(error) == (
        "config key 'server.listen': not a valid Twisted endpoint string "
        "('tcpp:80'): Unknown endpoint type: 'tcpp'"
    )


@pytest.mark.parametrize("value", ["tcp:abc", "tcp:80:bogus=1", "", "8096"])
def test_bad_endpoints(value: str) -> None:
    error = error_for(overrides={"server.listen": value})
    assert error.key == "server.listen"
    assert "not a valid Twisted endpoint string" in str(error)


@pytest.mark.parametrize(
    "value", ["tcp:0", "tcp6:8096:interface=\\:\\:1", "unix:/tmp/revenge.sock"]
)
def test_good_endpoints(value: str) -> None:
    assert load_config(environ={}, overrides={"server.listen": value}).server.listen == value


def test_bad_metrics_endpoint() -> None:
    error = error_for(environ={"REVENGE_SERVER_METRICS_LISTEN": "http:9090"})
    assert error.key == "server.metrics_listen"


def test_metrics_listen_must_differ() -> None:
    error = error_for(
        environ={
            "REVENGE_SERVER_LISTEN": "tcp:9090",
            "REVENGE_SERVER_METRICS_LISTEN": "tcp:9090",
        }
    )
    assert error.key == "server.metrics_listen"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.db",
        "sqlite:////absolute/revenge.db",
        "postgresql://user:pw@db:5432/revenge",
        "postgresql+psycopg://user:pw@db/revenge",
    ],
)
def test_good_database_urls(url: str) -> None:
    assert load_config(environ={"REVENGE_DATABASE_URL": url}).database.url == url


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"mysql://root:{SECRET}@db/revenge", "unsupported database URL scheme 'mysql'"),
        (f"postgres://root:{SECRET}@db/revenge", "unsupported database URL scheme"),
        (f"root:{SECRET}@db", "not a database URL"),
        ("", "not a database URL"),
    ],
)
def test_bad_database_url(url: str, expected: str) -> None:
    error = error_for(environ={"REVENGE_DATABASE_URL": url})
    assert error.key == "database.url"
    assert expected in str(error)
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    "environ, key",
    [
        ({"REVENGE_STORAGE_AVATAR_MAX_BYTES": "0"}, "storage.avatar_max_bytes"),
        ({"REVENGE_STORAGE_AVATAR_MAX_BYTES": "-1"}, "storage.avatar_max_bytes"),
        ({"REVENGE_JOBS_CLEANUP_INTERVAL": "0s"}, "jobs.cleanup.interval"),
        ({"REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION": "0"}, "jobs.cleanup.activity_retention"),
        ({"REVENGE_NODE_ID": ""}, "node_id"),
        ({"REVENGE_DATA_DIR": ""}, "data_dir"),
        ({"REVENGE_STORAGE_S3_ENDPOINT": "minio:9000"}, "storage.s3.endpoint"),
        ({"REVENGE_RAFT_BIND_ADDR": "0.0.0.0"}, "raft.bind_addr"),
        ({"REVENGE_RAFT_ADVERTISE_ADDR": "host:99999"}, "raft.advertise_addr"),
        ({"REVENGE_RAFT_PEERS": "a:7000,b"}, "raft.peers"),
    ],
)
def test_bad_values(environ: dict[str, str], key: str) -> None:
    assert error_for(environ=environ).key == key


def test_zero_shutdown_grace_is_allowed() -> None:
    config = load_config(environ={"REVENGE_SERVER_SHUTDOWN_GRACE": "0"})
    assert config.server.shutdown_grace == 0.0
    # The linger, left unset, follows the grace down.
    assert config.server.shutdown_linger == 0.0


def test_shutdown_linger_defaults_to_2s_inside_the_grace() -> None:
    assert load_config(environ={}).server.shutdown_linger == 2.0
    short = load_config(environ={"REVENGE_SERVER_SHUTDOWN_GRACE": "1.5s"})
    assert short.server.shutdown_linger == 1.5


def test_shutdown_linger_may_equal_the_grace_or_be_0(write_yaml: WriteYaml) -> None:
    path = write_yaml("server:\n  shutdown_grace: 10s\n  shutdown_linger: 10s\n")
    assert load_config(path, {}).server.shutdown_linger == 10.0
    config = load_config(environ={"REVENGE_SERVER_SHUTDOWN_LINGER": "0"})
    assert config.server.shutdown_linger == 0.0


def test_shutdown_linger_longer_than_the_grace_is_refused(write_yaml: WriteYaml) -> None:
    error = error_for(
        environ={
            "REVENGE_SERVER_SHUTDOWN_GRACE": "5s",
            "REVENGE_SERVER_SHUTDOWN_LINGER": "6s",
        }
    )
    assert error.key == "server.shutdown_linger"
    message = str(error)
    assert "\n" not in message
    assert message.startswith(
        "config key 'server.shutdown_linger' (from environment variable "
        "REVENGE_SERVER_SHUTDOWN_LINGER): must not exceed server.shutdown_grace (5s), got 6s"
    )
    # From the file, against the default grace.
    error = error_for(write_yaml("server:\n  shutdown_linger: 30s\n"))
    assert error.key == "server.shutdown_linger"
    assert "(25s), got 30s" in str(error)


def test_negative_shutdown_linger_is_refused() -> None:
    assert error_for(environ={"REVENGE_SERVER_SHUTDOWN_LINGER": "-1"}).key == (
        "server.shutdown_linger"
    )


def test_empty_media_path_in_file(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("media:\n  music_paths: ['']\n"))
    assert error.key == "media.music_paths"
    assert "item 1" in str(error)


# -- providers and cross-field rules -------------------------------------------------


def test_unknown_storage_backend_lists_choices() -> None:
    error = error_for(environ={"REVENGE_STORAGE_BACKEND": "ftp"})
    assert error.key == "storage.backend"
    message = str(error)
    assert message.startswith(
        "config key 'storage.backend' (from environment variable "
        "REVENGE_STORAGE_BACKEND): "
    )
    assert "'ftp'" in message
    assert "revenge.storage" in message
    assert "local" in message


def test_unknown_election_backend_lists_choices(write_yaml: WriteYaml) -> None:
    error = error_for(write_yaml("election:\n  backend: zookeeper\n"))
    assert error.key == "election.backend"
    assert "revenge.election" in str(error)
    assert "standalone" in str(error)


def test_raft_requires_secret() -> None:
    error = error_for(environ={"REVENGE_ELECTION_BACKEND": "raft"})
    assert error.key == "raft.secret"
    assert "pysyncobj" in str(error)
    assert "unpickle" in str(error)


@pytest.mark.parametrize(
    ("weak", "why"),
    [
        ("a", "1 bytes long"),
        (" ", "must not be empty"),
        ("a" * 40, "repeats a block of 1"),
        ("password" * 5, "repeats a block of 8"),
        ("abababababababababababababababababababcd", "too little entropy"),
    ],
)
def test_raft_refuses_a_weak_secret_in_one_line(weak: str, why: str) -> None:
    error = error_for(environ={"REVENGE_ELECTION_BACKEND": "raft", "REVENGE_RAFT_SECRET": weak})
    assert error.key == "raft.secret"
    message = str(error)
    assert why in message
    assert "revenge raft secret" in message  # how to make a good one
    assert "\n" not in message
    if len(weak) > 8:
        assert weak not in message  # (a one-letter secret is in any message)


def test_a_weak_secret_is_fine_while_raft_is_not_used() -> None:
    config = load_config(environ={"REVENGE_RAFT_SECRET": "a"})
    assert config.election.backend == "standalone"


def test_generated_secrets_are_accepted(all_providers: None) -> None:
    for _ in range(20):
        secret = generate_secret()
        assert secret_problem(secret) is None
        assert len(secret.encode()) >= 32
        config = load_config(
            environ={"REVENGE_ELECTION_BACKEND": "raft", "REVENGE_RAFT_SECRET": secret}
        )
        assert config.raft.secret == secret


def test_raft_with_secret(all_providers: None) -> None:
    config = load_config(
        environ={"REVENGE_ELECTION_BACKEND": "raft", "REVENGE_RAFT_SECRET": SECRET}
    )
    assert config.raft.secret == SECRET


def test_s3_requires_bucket() -> None:
    error = error_for(environ={"REVENGE_STORAGE_BACKEND": "s3"})
    assert error.key == "storage.s3.bucket"
    assert "'s3'" in str(error)


def test_s3_credentials_come_in_pairs() -> None:
    error = error_for(
        environ={
            "REVENGE_STORAGE_BACKEND": "s3",
            "REVENGE_STORAGE_S3_BUCKET": "b",
            "REVENGE_STORAGE_S3_ACCESS_KEY_ID": SECRET,
        }
    )
    assert error.key == "storage.s3.secret_access_key"
    assert SECRET not in str(error)


def test_s3_complete(all_providers: None) -> None:
    config = load_config(
        environ={
            "REVENGE_STORAGE_BACKEND": "s3",
            "REVENGE_STORAGE_S3_ENDPOINT": "http://minio:9000",
            "REVENGE_STORAGE_S3_BUCKET": "media",
            "REVENGE_STORAGE_S3_ACCESS_KEY_ID": "id",
            "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": SECRET,
            "REVENGE_STORAGE_S3_USE_PATH_STYLE": "true",
        }
    )
    assert config.storage.s3.bucket == "media"
    assert config.storage.s3.secret_access_key == SECRET


def test_config_type() -> None:
    assert isinstance(load_config(environ={}), Config)
