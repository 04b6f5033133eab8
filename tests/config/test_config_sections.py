"""
Sections that installed distributions declare (entry point group
``revenge.config``): read like Revenge's own keys, checked as strictly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from revenge.cli import main
from revenge.config import (
    SECTION_GROUP,
    Config,
    ConfigError,
    config_keys,
    duration_setting,
    load_config,
    redacted,
    secret_setting,
    unknown_environment,
    url_setting,
)
from revenge.config import _sections
from revenge.config._sections import installed_sections

SECRET = "demo-token-that-must-not-leak"
DB_PASSWORD = "demo-db-password-that-must-not-leak"


@dataclass(frozen=True)
class DemoRetry:
    attempts: int = 3
    backoff: float = duration_setting(0.5)


@dataclass(frozen=True)
class DemoSettings:
    lease: float = duration_setting(5.0)
    table: str = "demo_lease"
    enabled: bool = True
    hosts: tuple[str, ...] = ()
    spool: str = "{data_dir}/demo"
    token: str = secret_setting()
    url: str = url_setting()
    retry: DemoRetry = field(default_factory=DemoRetry)

    def __post_init__(self) -> None:
        if self.retry.attempts < 1:
            raise ConfigError("must be at least 1", key="demo.retry.attempts")
        if self.table == "forbidden":
            raise ValueError("table 'forbidden' is reserved")


@dataclass
class NotFrozen:
    value: int = 1


@dataclass(frozen=True)
class ListOfInts:
    numbers: tuple[int, ...] = ()


@dataclass(frozen=True)
class NoDefault:
    needed: str


@dataclass(frozen=True)
class S3Bucket:
    bucket: str = ""


@dataclass(frozen=True)
class Other:
    value: str = ""


class FakeEntryPoint:
    """Enough of importlib.metadata.EntryPoint for the section loader."""

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.group = SECTION_GROUP
        self.value = f"demo_plugin:{getattr(target, '__name__', 'broken')}"
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Replace the installed sections with the given ``name=target`` pairs."""

    def installing(**targets: Any) -> None:
        points = [FakeEntryPoint(name, target) for name, target in targets.items()]

        def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
            assert group == SECTION_GROUP
            return points

        monkeypatch.setattr(_sections, "entry_points", fake_entry_points)

    installing(demo=DemoSettings)
    yield installing


def demo(config: Config) -> DemoSettings:
    return config.section("demo", DemoSettings)


def error_for(**load: Any) -> ConfigError:
    load.setdefault("environ", {})
    with pytest.raises(ConfigError) as caught:
        load_config(**load)
    assert "\n" not in str(caught.value)
    return caught.value


def test_defaults_with_placeholders_expanded(install: Any) -> None:
    settings = demo(load_config(environ={"REVENGE_DATA_DIR": "/srv"}))
    assert settings == DemoSettings(spool="/srv/demo")


def test_from_the_file(install: Any, write_yaml: Any) -> None:
    path = write_yaml(
        "demo:\n"
        "  lease: 2m\n"
        "  table: custom\n"
        "  enabled: false\n"
        "  hosts: [a, b]\n"
        "  retry:\n"
        "    attempts: 7\n"
    )
    settings = demo(load_config(path, {}))
    assert settings.lease == 120.0
    assert settings.table == "custom"
    assert settings.enabled is False
    assert settings.hosts == ("a", "b")
    assert settings.retry == DemoRetry(attempts=7)


def test_an_empty_section_in_the_file(install: Any, write_yaml: Any) -> None:
    assert demo(load_config(write_yaml("demo:\n"), {})).table == "demo_lease"


def test_environment_wins_over_the_file(install: Any, write_yaml: Any) -> None:
    path = write_yaml("demo:\n  lease: 2m\n  table: from-file\n")
    config = load_config(
        path,
        {
            "REVENGE_DEMO_LEASE": "750ms",
            "REVENGE_DEMO_HOSTS": "x, y",
            "REVENGE_DEMO_RETRY_BACKOFF": "2s",
            "REVENGE_DEMO_ENABLED": "off",
        },
    )
    settings = demo(config)
    assert settings.lease == 0.75
    assert settings.table == "from-file"
    assert settings.hosts == ("x", "y")
    assert settings.retry.backoff == 2.0
    assert settings.enabled is False


def test_overrides(install: Any) -> None:
    config = load_config(environ={}, overrides={"demo.table": "from-command-line"})
    assert demo(config).table == "from-command-line"


def test_unknown_key_in_a_section_is_fatal_with_a_suggestion(
    install: Any, write_yaml: Any
) -> None:
    error = error_for(path=write_yaml("demo:\n  leas: 5s\n"))
    assert str(error) == "config key 'demo.leas': unknown key (did you mean 'demo.lease'?)"


def test_unknown_section_is_still_fatal(install: Any, write_yaml: Any) -> None:
    error = error_for(path=write_yaml("demos:\n  lease: 5s\n"))
    assert error.key == "demos"
    assert "did you mean 'demo'?" in str(error)


def test_wrong_types_name_the_key(install: Any, write_yaml: Any) -> None:
    error = error_for(environ={"REVENGE_DEMO_LEASE": "soon"})
    assert error.key == "demo.lease"
    assert error.origin == "from environment variable REVENGE_DEMO_LEASE"
    error = error_for(path=write_yaml("demo:\n  retry:\n    attempts: many\n"))
    assert str(error) == (
        "config key 'demo.retry.attempts': expected an integer, got a string ('many')"
    )


def test_a_wrong_secret_is_not_shown(install: Any, write_yaml: Any) -> None:
    error = error_for(path=write_yaml(f"demo:\n  token: [{SECRET}]\n"))
    assert error.key == "demo.token"
    assert SECRET not in str(error)


def test_the_section_checks_its_values(install: Any) -> None:
    error = error_for(environ={"REVENGE_DEMO_RETRY_ATTEMPTS": "0"})
    assert str(error) == "config key 'demo.retry.attempts': must be at least 1"
    error = error_for(environ={"REVENGE_DEMO_TABLE": "forbidden"})
    assert str(error) == "config key 'demo': table 'forbidden' is reserved"


def test_redaction(install: Any) -> None:
    config = load_config(
        environ={
            "REVENGE_DEMO_TOKEN": SECRET,
            "REVENGE_DEMO_URL": f"postgresql://revenge:{DB_PASSWORD}@db/revenge",
        }
    )
    assert demo(config).token == SECRET
    # Revenge's own tree alone by default, as before sections existed.
    assert "demo" not in redacted(config)
    shown = redacted(config, sections=True)
    assert shown["demo"]["token"] == "***"
    assert shown["demo"]["url"] == "postgresql://revenge:***@db/revenge"
    assert shown["demo"]["lease"] == "5s"
    assert shown["demo"]["retry"] == {"attempts": 3, "backoff": "500ms"}
    assert list(shown)[-1] == "demo"
    for text in (yaml.safe_dump(shown), repr(config), repr(demo(config))):
        assert SECRET not in text
        assert DB_PASSWORD not in text


def test_the_printed_configuration_loads_back(install: Any, write_yaml: Any) -> None:
    config = load_config(environ={"REVENGE_DEMO_LEASE": "90s", "REVENGE_DEMO_HOSTS": "h"})
    path = write_yaml(yaml.safe_dump(redacted(config, sections=True)), "round-trip.yaml")
    assert load_config(path, {}) == config


def test_config_check_shows_sections(
    install: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVENGE_DEMO_TOKEN", SECRET)
    monkeypatch.setenv("REVENGE_DEMO_TABLE", "shown")
    assert main(["config", "check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert SECRET not in out
    # A section's variables are settings, not "ignored".
    assert "ignored" not in out
    shown = yaml.safe_load(out)
    assert shown["demo"]["table"] == "shown"
    assert shown["demo"]["token"] == "***"


def test_section_variables_are_not_unknown(install: Any) -> None:
    environ = {"REVENGE_DEMO_LEASE": "1s", "REVENGE_SERVICE_HOST": "10.0.0.1"}
    assert unknown_environment(environ) == ["REVENGE_SERVICE_HOST"]


def test_config_keys(install: Any) -> None:
    own = config_keys()
    assert not any(name.startswith("demo.") for name, _ in own)
    everything = config_keys(sections=True)
    assert everything[: len(own)] == own
    assert ("demo.retry.backoff", "REVENGE_DEMO_RETRY_BACKOFF") in everything
    assert len(everything) == len(own) + 9


def test_sections_take_part_in_equality(install: Any) -> None:
    assert load_config(environ={}) == load_config(environ={})
    assert load_config(environ={}) != load_config(environ={"REVENGE_DEMO_TABLE": "other"})


def test_a_config_built_by_hand_holds_the_defaults() -> None:
    assert Config().section("demo", DemoSettings) == DemoSettings()
    custom = DemoSettings(table="mine")
    assert Config(sections={"demo": custom}).section("demo", DemoSettings) is custom
    with pytest.raises(TypeError, match="holds DemoSettings, not Other"):
        Config(sections={"demo": custom}).section("demo", Other)


def test_sections_are_not_fields() -> None:
    # Config's fields stay exactly Revenge's keys.
    assert "sections" not in {each.name for each in dataclasses.fields(Config)}


def test_several_sections_sorted_by_name(install: Any) -> None:
    install(zeta=Other, demo=DemoSettings)
    assert [section.name for section in installed_sections()] == ["demo", "zeta"]
    config = load_config(environ={"REVENGE_ZETA_VALUE": "z"})
    assert config.section("zeta", Other).value == "z"
    assert config.section_names() == ["demo", "zeta"]


@pytest.mark.parametrize(
    "name, target, expected",
    [
        pytest.param(
            "demo", ImportError("No module named 'demo_plugin'"),
            "failed to load: ImportError: No module named 'demo_plugin'", id="import-error",
        ),
        pytest.param("demo", NotFrozen, "is not a frozen dataclass", id="not-frozen"),
        pytest.param("demo", "a string", "is not a frozen dataclass", id="not-a-class"),
        pytest.param(
            "demo", ListOfInts, "unsupported type tuple[int, ...]", id="unsupported-type"
        ),
        pytest.param("demo", NoDefault, "key 'demo.needed' has no default", id="no-default"),
        pytest.param(
            "raft", Other, "Revenge's own configuration already has this key", id="own-key"
        ),
        pytest.param(
            "Demo", Other, "a section name is lower-case letters", id="upper-case"
        ),
        pytest.param(
            "storage_s3", S3Bucket,
            "key 'storage_s3.bucket' and key 'storage.s3.bucket' would share the "
            "environment variable REVENGE_STORAGE_S3_BUCKET",
            id="environment-clash",
        ),
    ],
)  # fmt: skip
def test_a_broken_section_stops_loading_in_one_line(
    install: Any, name: str, target: Any, expected: str
) -> None:
    install(**{name: target})
    error = error_for()
    assert str(error).startswith(
        f"config section {name!r} from entry point group 'revenge.config' (demo_plugin:"
    )
    assert expected in str(error)


def test_a_section_url_with_an_unencoded_password_is_refused(install: Any) -> None:
    # The rule is every URL key's, not database.url's alone.
    error = error_for(environ={"REVENGE_DEMO_URL": f"postgresql://revenge:{DB_PASSWORD}@x@db/r"})
    assert error.key == "demo.url"
    assert "'@' becomes %40" in str(error)
    assert DB_PASSWORD not in str(error)
    assert "x@db" not in str(error)
