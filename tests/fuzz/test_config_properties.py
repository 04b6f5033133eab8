"""
Configuration parsing, by property:

- durations: what ``format_duration`` writes, ``parse_duration`` reads back
  exactly; any text either parses to a finite duration >= 0 or is refused
  with ValueError;
- round trips: any configuration, printed as ``revenge config check`` prints
  it (``redacted()`` as YAML), loads back to the same ``Config``, from a file
  and from ``REVENGE_*`` variables alike;
- anything else (random YAML documents, file bytes, variable values) either
  loads or stops with one ``ConfigError`` line; never another exception.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import assume, example, given, reject, settings
from hypothesis import strategies as st

from revenge.config import (
    Config,
    ConfigError,
    load_config,
    redacted,
)
from revenge.config._duration import format_duration, parse_duration
from revenge.config._schema import DURATION, SECRET, URL_PASSWORD

from .tally import count_input, examples


# -- durations ------------------------------------------------------------------------

# Everything a duration can hold: floats of every magnitude, including those
# that decimal fractions cannot write exactly.
seconds = st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False)
human_seconds = st.one_of(
    st.integers(0, 10**9).map(float),
    st.integers(0, 10**7).map(lambda ms: ms / 1000),
    st.decimals(0, 10**6, places=3).map(float),
)


@settings(max_examples=examples(1000))
@given(st.one_of(seconds, human_seconds))
@example(0.0)
@example(5e-324)
@example(0.1 + 0.2)
@example(86400.1)
@example(1e-05)
@example(3600.5)
@example(123456789.123456789)
def test_format_duration_reads_back_exactly(value: float) -> None:
    count_input("config: format_duration/parse_duration round trip")
    text = format_duration(value)
    assert parse_duration(text) == value, text
    assert "e" not in text.lower().replace("ms", ""), "no exponent notation"


duration_alphabet = st.sampled_from(list("0123456789.smhd +-eE_,") + ["ms", " ", "\t", "１", "٣"])


@settings(max_examples=examples(1000))
@given(st.one_of(st.text(max_size=30), st.lists(duration_alphabet, max_size=20).map("".join)))
@example("9" * 400 + "s")
@example("1" * 400)
@example("1e3s")
@example("1h-5m")
@example(".s")
def test_any_duration_text_parses_or_is_refused_with_value_error(text: str) -> None:
    count_input("config: parse_duration on any text")
    try:
        value = parse_duration(text)
    except ValueError as error:
        assert "\n" not in str(error)
        return
    assert math.isfinite(value) and value >= 0


# -- the keys, found from the dataclasses (as tests/config/test_config_keys.py does) --


@dataclasses.dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    kind: str  # str, int, bool, duration, list, secret, url

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return "REVENGE_" + "_".join(self.path).upper()


def leaves(cls: type[Any], prefix: tuple[str, ...] = ()) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    found: list[Leaf] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        path = prefix + (field.name,)
        if dataclasses.is_dataclass(hint):
            assert isinstance(hint, type)
            found.extend(leaves(hint, path))
        elif field.metadata.get(SECRET):
            found.append(Leaf(path, "secret"))
        elif field.metadata.get(DURATION):
            found.append(Leaf(path, "duration"))
        elif field.metadata.get(URL_PASSWORD):
            found.append(Leaf(path, "url"))
        elif hint is bool:
            found.append(Leaf(path, "bool"))
        elif hint is int:
            found.append(Leaf(path, "int"))
        elif hint is str:
            found.append(Leaf(path, "str"))
        else:
            found.append(Leaf(path, "list"))
    return found


LEAVES = leaves(Config)

# -- valid configurations --------------------------------------------------------------

# Any text a YAML file or a variable can carry (no NUL, no surrogates), with
# the characters that YAML and the loader treat specially over-represented.
any_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
) | st.sampled_from(
    ["yes", "no", "on", "null", "~", "1e3", "0x1F", "- a", "a: b", "#x", " padded ", "'", '"']
    + ["{hostname}"]
)
non_empty_text = any_text.filter(lambda text: text.strip() != "")
plain_item = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters=","),
    min_size=1,
    max_size=12,
)
host_port = st.tuples(
    st.sampled_from(["node-1", "10.0.0.7", "[::1]", "h"]), st.integers(1, 65535)
).map(lambda t: f"{t[0]}:{t[1]}")

# Keys whose values must follow a rule of their own; the others follow their kind.
SPECIAL: dict[str, st.SearchStrategy[Any]] = {
    "server.listen": st.sampled_from(
        ["tcp:8096", "tcp:0:interface=127.0.0.1", "unix:/run/revenge.sock"]
    ),
    "server.metrics_listen": st.sampled_from(["", "tcp:9090", "tcp:9091:interface=::1"]),
    "database.url": st.one_of(
        non_empty_text.map(lambda path: "sqlite:///" + path.strip()),
        st.sampled_from(
            ["postgresql://revenge@db/revenge", "postgresql+psycopg://u@h:5433/x?sslmode=require"]
        ),
    ),
    "storage.backend": st.just("local"),
    "election.backend": st.just("standalone"),
    "storage.s3.endpoint": st.sampled_from(["", "http://minio:9000", "https://s3.example"]),
    "raft.bind_addr": host_port,
    "raft.advertise_addr": host_port,
    "raft.peers": st.lists(host_port, max_size=3),
}
BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "str": non_empty_text,
    "secret": st.just(""),  # shown as "***" when set, so only unset secrets can round-trip
    "url": non_empty_text,
    "int": st.integers(1, 2**62),
    "bool": st.booleans(),
    "duration": st.one_of(seconds, human_seconds).filter(lambda value: value > 0),
    "list": st.lists(st.one_of(non_empty_text, plain_item), max_size=3),
}


def nested(values: dict[Leaf, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for leaf, value in values.items():
        node = tree
        for part in leaf.path[:-1]:
            node = node.setdefault(part, {})
        node[leaf.path[-1]] = list(value) if isinstance(value, tuple) else value
    return tree


@st.composite
def configurations(draw: st.DrawFn) -> dict[Leaf, Any]:
    chosen = draw(st.lists(st.sampled_from(LEAVES), unique=True, max_size=len(LEAVES)))
    return {leaf: draw(SPECIAL.get(leaf.name, BY_KIND[leaf.kind])) for leaf in chosen}


def load_yaml_text(text: str, directory: Path) -> Config:
    path = directory / "revenge.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), environ={}, cwd=str(directory))


def env_text(value: Any) -> str | None:
    """A printed value as a REVENGE_* variable holds it; None when a variable cannot."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        # Comma-separated and stripped: items with commas or outer spaces,
        # and empty items, have no spelling in a variable.
        if any("," in item or item != item.strip() or not item for item in value):
            return None
        return ",".join(value)
    return str(value)


def flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + (name,)))
        else:
            flat[prefix + (name,)] = value
    return flat


@settings(max_examples=examples(200))
@given(configurations())
def test_what_config_check_prints_loads_back_to_the_same_config(values: dict[Leaf, Any]) -> None:
    count_input("config: printed configuration loads back (file and environment)")
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        try:
            original = load_yaml_text(yaml.safe_dump(nested(values)), directory)
        except ConfigError:
            reject()  # a combination the loader refuses (checked below, by other tests)
        printed = yaml.safe_dump(redacted(original), sort_keys=False)
        assert load_yaml_text(printed, directory) == original, printed

        environ: dict[str, str] = {}
        for path, value in flatten(redacted(original)).items():
            text = env_text(value)
            assume(text is not None)
            assert text is not None
            environ["REVENGE_" + "_".join(path).upper()] = text
        empty = directory / "no-file-here"
        empty.mkdir()
        assert load_config(None, environ=environ, cwd=str(empty)) == original, environ


# -- anything else -------------------------------------------------------------------

KEY_NAMES = [leaf.path for leaf in LEAVES]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), any_text,
    st.sampled_from(
        ["30s", "-1s", "1h30m", "local", "s3", "raft", "tcp:8096", "tcp:nope", "sqlite:///x"]
    ),
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(any_text, st.integers(), st.booleans()), children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def plausible_documents(draw: st.DrawFn) -> Any:
    """Mostly real key paths with values of any type; sometimes any YAML at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(yaml_values)
    document: dict[Any, Any] = {}
    for path in draw(st.lists(st.sampled_from(KEY_NAMES), max_size=6)):
        node = document
        cut = draw(st.integers(1, len(path)))
        for part in path[: cut - 1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[cut - 1]] = draw(yaml_values)
    return document


def assert_one_line(error: ConfigError) -> None:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, repr(text)


@settings(max_examples=examples(300))
@given(plausible_documents())
@example({"server": {"listen": None}})
@example({"storage": {"avatar_max_bytes": True}})
@example({"jobs": {"cleanup": {"interval": float("nan")}}})
@example({"jobs": {"cleanup": {"interval": 10**400}}})
@example({"server.listen": "tcp:1"})
@example([1, 2])
def test_any_yaml_document_loads_or_fails_with_one_line(document: Any) -> None:
    count_input("config: arbitrary YAML documents")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            load_yaml_text(yaml.safe_dump(document), Path(scratch))
        except ConfigError as error:
            assert_one_line(error)


@settings(max_examples=examples(300))
@given(st.binary(max_size=200))
@example(b"server: {listen: &a [*a]}")
@example(b"\xff\xfe")
@example(b"a: 1\na: 2\n")
@example(b"!!python/object:os.system {}")
def test_any_file_bytes_load_or_fail_with_one_line(content: bytes) -> None:
    count_input("config: arbitrary file bytes")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "revenge.yaml"
        path.write_bytes(content)
        try:
            load_config(str(path), environ={}, cwd=scratch)
        except ConfigError as error:
            assert_one_line(error)


@settings(max_examples=examples(300))
@given(st.dictionaries(st.sampled_from([leaf.env for leaf in LEAVES]), any_text, max_size=5))
@example({"REVENGE_SERVER_SHUTDOWN_GRACE": "1" * 400})
@example({"REVENGE_STORAGE_AVATAR_MAX_BYTES": "1" * 5000})
@example({"REVENGE_DATA_DIR": "{data_dir}"})
def test_any_environment_loads_or_fails_with_one_line(environ: dict[str, str]) -> None:
    count_input("config: arbitrary environment values")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            load_config(None, environ=environ, cwd=scratch)
        except ConfigError as error:
            assert_one_line(error)
