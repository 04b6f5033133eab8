"""``revenge config check`` and the command-line frame around it."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from typing import Any
from urllib.parse import quote

import pytest
import yaml

from revenge.cli import Command, CommandError, build_parser, main

SECRET = "raft-secret-c0ffee-must-not-leak"
S3_SECRET = "s3-secret-key-must-not-leak"

REVENGE = Path(sys.executable).with_name("revenge")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory, a fixed hostname and no REVENGE_* variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket, "gethostname", lambda: "node-a")
    for name in list(os.environ):
        if name.startswith("REVENGE_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("# effective configuration (no file + environment")
    shown = yaml.safe_load(out)
    assert shown["server"]["listen"] == "tcp:8096"
    assert shown["node_id"] == "node-a"
    assert shown["jobs"]["cleanup"]["activity_retention"] == "90d"
    assert "ignored" not in out


def test_file_environment_and_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        "server:\n  listen: tcp:9000\n"
        f"storage:\n  s3:\n    secret_access_key: {S3_SECRET}\n"
        "    access_key_id: AKIAEXAMPLE\n"
    )
    monkeypatch.setenv("REVENGE_RAFT_SECRET", SECRET)
    monkeypatch.setenv("REVENGE_NODE_ID", "from-env")
    monkeypatch.setenv("REVENGE_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("REVENGE_PORT", "tcp://10.0.0.1:80")
    assert main(["config", "check", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert SECRET not in out
    assert S3_SECRET not in out
    assert "AKIAEXAMPLE" not in out
    assert f"# effective configuration (file {config}" in out
    assert out.splitlines()[-1] == (
        "# ignored environment variables (not Revenge settings): "
        "REVENGE_PORT, REVENGE_SERVICE_HOST"
    )
    shown = yaml.safe_load(out)
    assert shown["server"]["listen"] == "tcp:9000"
    assert shown["node_id"] == "from-env"
    assert shown["raft"]["secret"] == "***"
    assert shown["storage"]["s3"]["secret_access_key"] == "***"


def test_revenge_yaml_in_cwd(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (isolated / "revenge.yaml").write_text("node_id: from-cwd-file\n")
    assert main(["config", "check"]) == 0
    out, _ = capsys.readouterr()
    assert "# effective configuration (file revenge.yaml" in out
    assert yaml.safe_load(out)["node_id"] == "from-cwd-file"


def test_config_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVENGE_SERVER_LISTEN", "tcpp:80")
    assert main(["config", "check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "revenge: config key 'server.listen' (from environment variable "
        "REVENGE_SERVER_LISTEN): not a valid Twisted endpoint string "
        "('tcpp:80'): Unknown endpoint type: 'tcpp'\n"
    )


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["config", "check", "--config", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"revenge: config file {str(missing)!r} does not exist\n"


def test_raft_without_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVENGE_ELECTION_BACKEND", "raft")
    assert main(["config", "check"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("revenge: config key 'raft.secret': required")
    assert err.count("\n") == 1


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["config"]) == 2
    assert main(["config", "check", "--bogus"]) == 2
    assert main(["nonsense"]) == 2
    _, err = capsys.readouterr()
    assert "usage: revenge" in err


def test_help_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out, _ = capsys.readouterr()
    assert "config" in out
    assert main(["config", "check", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "--config PATH" in out


def test_registry_builds_nested_commands(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[argparse.Namespace] = []

    def add_user(args: argparse.Namespace) -> int:
        calls.append(args)
        return 0

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--admin", action="store_true")

    def fail(args: argparse.Namespace) -> int:
        raise CommandError("no database", exit_code=3)

    parser = build_parser(
        [
            Command(("user", "add"), "add a user", add_user, configure, uses_config=True),
            Command(("migrate",), "migrate the database", fail),
        ]
    )
    args = parser.parse_args(["user", "add", "alice", "--admin", "--config", "x.yaml"])
    assert args.run(args) == 0
    assert (calls[0].name, calls[0].admin, calls[0].config) == ("alice", True, "x.yaml")
    args = parser.parse_args(["migrate"])
    with pytest.raises(CommandError) as caught:
        args.run(args)
    assert caught.value.exit_code == 3


def test_real_console_script(tmp_path: Path) -> None:
    if not REVENGE.exists():
        pytest.skip(f"no console script at {REVENGE}")
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("REVENGE_")
    }
    environ["REVENGE_RAFT_SECRET"] = SECRET
    good = subprocess.run(
        [str(REVENGE), "config", "check"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert SECRET not in good.stdout
    assert yaml.safe_load(good.stdout)["raft"]["secret"] == "***"

    environ["REVENGE_ELECTION_BACKEND"] = "raft"
    environ["REVENGE_STORAGE_S3_USE_PATH_STYLE"] = "sometimes"
    bad = subprocess.run(
        [str(REVENGE), "config", "check"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith(
        "revenge: config key 'storage.s3.use_path_style' (from environment "
        "variable REVENGE_STORAGE_S3_USE_PATH_STYLE): expected a boolean"
    )
    assert "Traceback" not in bad.stderr
    assert SECRET not in bad.stderr


def test_raft_secret_prints_a_secret_the_configuration_accepts(capsys: Any) -> None:
    from revenge.cli import main
    from revenge.config import secret_problem

    assert main(["raft", "secret"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["raft", "secret"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second
    assert secret_problem(first) is None and len(first) >= 43


DB_PASSWORD = "Qx7@Wv9k/Jz3?Ym8"
SSL_PASSWORD = "Sp4ss@K3yQ"


def _pieces(secret: str) -> list[str]:
    """Every four characters of ``secret``, as written and percent-encoded."""
    forms = (secret, quote(secret, safe=""))
    return [form[start : start + 4] for form in forms for start in range(len(form) - 3)]


def test_database_url_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "REVENGE_DATABASE_URL",
        f"postgresql://revenge:{quote(DB_PASSWORD, safe='')}@db:5432/revenge"
        f"?sslmode=verify-full&sslkey=/etc/revenge/client.key"
        f"&sslpassword={quote(SSL_PASSWORD, safe='')}&password={quote(DB_PASSWORD, safe='')}",
    )
    assert main(["config", "check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert yaml.safe_load(out)["database"]["url"] == (
        "postgresql://revenge:***@db:5432/revenge?sslmode=verify-full"
        "&sslkey=/etc/revenge/client.key&sslpassword=***&password=***"
    )
    assert [piece for piece in _pieces(DB_PASSWORD) + _pieces(SSL_PASSWORD) if piece in out] == []


def test_an_unencoded_database_password_is_one_line_with_how_to_encode_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVENGE_DATABASE_URL", "postgresql://revenge:Qx7@Wv9kJz3Ym8@db/revenge")
    assert main(["config", "check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        "revenge: config key 'database.url' (from environment variable "
        "REVENGE_DATABASE_URL): the password holds a raw '@'; percent-encode"
    )
    assert "urllib.parse.quote(value, safe='')" in err
    assert "'@' becomes %40" in err
    assert err.count("\n") == 1
    assert [piece for piece in _pieces("Qx7@Wv9kJz3Ym8") if piece in err] == []


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # `revenge config check | head -1`: the reader closes the pipe first.
    if not REVENGE.exists():
        pytest.skip(f"no console script at {REVENGE}")
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("REVENGE_")
    }
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        closed = subprocess.run(
            [str(REVENGE), "config", "check"],
            cwd=tmp_path,
            env=environ,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert closed.stderr == ""
    assert closed.returncode == 141
