"""Redaction: the effective configuration with no secret in it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import yaml

from revenge import providers
from revenge.config import (
    ConfigError,
    load_config,
    redact_text,
    redact_url,
    redacted,
    userinfo_problem,
)

SECRETS = {
    "REVENGE_RAFT_SECRET": "raft-secret-9f8e7d-7Vq2hZt9wKx3mPb0LrYcN5sJ",
    "REVENGE_STORAGE_S3_ACCESS_KEY_ID": "AKIA-key-id-1a2b3c",
    "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": "s3-secret-key-4d5e6f",
}
DB_PASSWORD = "db-password-7g8h9i"


@pytest.fixture
def all_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "check_name", lambda group, name: None)


def full_environ() -> dict[str, str]:
    return {
        **SECRETS,
        "REVENGE_ELECTION_BACKEND": "raft",
        "REVENGE_STORAGE_BACKEND": "s3",
        "REVENGE_STORAGE_S3_BUCKET": "media",
        "REVENGE_DATABASE_URL": f"postgresql://revenge:{DB_PASSWORD}@db:5432/revenge",
        "REVENGE_RAFT_PEERS": "revenge-1:7000,revenge-2:7000",
    }


def test_secrets_are_masked(all_providers: None) -> None:
    shown = redacted(load_config(environ=full_environ()))
    assert shown["raft"]["secret"] == "***"
    assert shown["storage"]["s3"]["access_key_id"] == "***"
    assert shown["storage"]["s3"]["secret_access_key"] == "***"
    assert shown["database"]["url"] == "postgresql://revenge:***@db:5432/revenge"
    dumped = yaml.safe_dump(shown)
    for secret in [*SECRETS.values(), DB_PASSWORD]:
        assert secret not in dumped
        assert secret not in repr(shown)


def test_empty_secrets_stay_empty() -> None:
    shown = redacted(load_config(environ={}))
    assert shown["raft"]["secret"] == ""
    assert shown["storage"]["s3"]["access_key_id"] == ""
    assert shown["storage"]["s3"]["secret_access_key"] == ""


def test_plain_data(all_providers: None) -> None:
    shown = redacted(load_config(environ=full_environ()))
    assert shown["raft"]["peers"] == ["revenge-1:7000", "revenge-2:7000"]
    assert shown["media"]["tv_paths"] == []
    assert shown["server"]["shutdown_grace"] == "25s"
    assert shown["jobs"]["cleanup"] == {"interval": "1h", "activity_retention": "90d"}
    assert shown["storage"]["avatar_max_bytes"] == 5242880
    assert shown["storage"]["s3"]["use_path_style"] is False
    assert list(shown) == [
        "server", "data_dir", "node_id", "database", "storage",
        "media", "election", "raft", "jobs",
    ]  # fmt: skip


def test_redacted_output_loads_back() -> None:
    # Without secrets, the printed config is itself a valid config file.
    config = load_config(
        environ={
            "REVENGE_SERVER_SHUTDOWN_GRACE": "1m30.5s",
            "REVENGE_MEDIA_TV_PATHS": "/tv",
            "REVENGE_DATABASE_URL": "postgresql://revenge@db/revenge",
        }
    )
    with open("round-trip.yaml", "w") as stream:
        yaml.safe_dump(redacted(config), stream)
    assert load_config("round-trip.yaml", {}) == config


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:///./data/revenge.db", "sqlite:///./data/revenge.db"),
        ("sqlite:////abs/a:b@c.db", "sqlite:////abs/a:b@c.db"),
        ("postgresql://db/revenge", "postgresql://db/revenge"),
        ("postgresql://user@db/revenge", "postgresql://user@db/revenge"),
        ("postgresql://user:pw@db/revenge", "postgresql://user:***@db/revenge"),
        ("postgresql://user:@db/revenge", "postgresql://user:***@db/revenge"),
        # Not percent-encoded: where the password ends is a guess, so nothing shows.
        ("postgresql://user:p@s/s@db:5432/x", "postgresql://***"),
        ("postgresql://user:pa?ss@db/x", "postgresql://***"),
        ("postgresql://db:5432/x?password=p@ss", "postgresql://***"),
        ("postgresql://user:p%40ss@db/x", "postgresql://user:***@db/x"),
        (
            "postgresql+psycopg://u:pw@db/x?sslmode=require&sslpassword=k3y&sslkey=/k.pem",
            "postgresql+psycopg://u:***@db/x?sslmode=require&sslpassword=***&sslkey=/k.pem",
        ),
        (
            "postgresql://u@db/x?oauth_client_secret=s&scram_client_key=c&scram_server_key=k",
            "postgresql://u@db/x?oauth_client_secret=***&scram_client_key=***&scram_server_key=***",
        ),
        # SQLAlchemy reads "#" as part of the value, so it is masked with it.
        (
            "postgresql://db/x?password=a#b&application_name=r",
            "postgresql://db/x?password=***&application_name=r",
        ),
        ("postgresql://db/x?PASSWORD=a&options=-c%20x", "postgresql://db/x?PASSWORD=***&options=-c%20x"),
        (
            "postgresql+psycopg://u:pw@db/x?sslmode=require",
            "postgresql+psycopg://u:***@db/x?sslmode=require",
        ),
        (
            "postgresql://db/x?sslmode=require&password=pw",
            "postgresql://db/x?sslmode=require&password=***",
        ),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_repr_of_a_config_carries_no_secret():
    from revenge.config import load_config

    config = load_config(
        None,
        {
            "REVENGE_RAFT_SECRET": "raft-secret-value-7Vq2hZt9wKx3mPb0LrYcN5sJ",
            "REVENGE_STORAGE_S3_ACCESS_KEY_ID": "AKIDVALUE",
            "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": "s3-secret-value",
            "REVENGE_DATABASE_URL": "postgresql://user:db-password@db/revenge",
        },
        cwd="/",
    )
    text = repr(config)
    for secret in ("raft-secret-value-7Vq2hZt9wKx3mPb0LrYcN5sJ", "AKIDVALUE", "s3-secret-value", "db-password"):
        assert secret not in text


# -- the userinfo of a URL must be percent-encoded -----------------------------------

# Every four characters of it are distinctive: none may show anywhere.
RAW_PASSWORD = "Qx7@Wv9k/Jz3?Ym8#Hb2:Tn5%zzRc4"
ENCODED_PASSWORD = quote(RAW_PASSWORD, safe="")


def pieces(secret: str, size: int = 4) -> list[str]:
    """Every run of ``size`` characters of ``secret``: what a leak of part of it shows."""
    return [secret[start : start + size] for start in range(len(secret) - size + 1)]


def assert_no_piece_of(secret: str, text: str) -> None:
    for forms in (secret, quote(secret, safe="")):
        leaked = [piece for piece in pieces(forms) if piece in text]
        assert not leaked, (leaked, text)


@pytest.mark.parametrize(
    "password, problem",
    [
        ("Qx7@Wv9kJz3Ym8", "the password holds a raw '@'"),
        ("Qx7Wv9k/Jz3Ym8", "a raw '/' comes before an '@'"),
        ("Qx7Wv9k?Jz3Ym8", "a raw '?' comes before an '@'"),
        ("Qx7Wv9k#Jz3Ym8", "a raw '#' comes before an '@'"),
        ("Qx7Wv9k:Jz3Ym8", "the password holds a raw ':'"),
        ("Qx7Wv9k%zzJz3Ym8", "the password holds a '%' that starts no %XX escape"),
        ("Qx7Wv9k Jz3Ym8", "the password holds a character other than letters"),
    ],
)
def test_an_unencoded_password_is_refused_with_how_to_encode_it(
    password: str, problem: str
) -> None:
    url = f"postgresql://revenge:{password}@db:5432/revenge"
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"REVENGE_DATABASE_URL": url})
    message = str(raised.value)
    assert raised.value.key == "database.url"
    assert message.startswith(
        "config key 'database.url' (from environment variable REVENGE_DATABASE_URL): "
        + problem
    ), message
    assert "urllib.parse.quote(value, safe='')" in message
    assert "'@' becomes %40" in message
    assert "\n" not in message
    assert_no_piece_of(password, message)


def test_an_unencoded_password_in_the_file_is_refused_too(write_yaml: Any) -> None:
    path = write_yaml(f"database:\n  url: postgresql://revenge:{RAW_PASSWORD}@db/revenge\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    # Up to its "/" it reads as password "Qx7", host "Wv9k": the "@" after is the clue.
    assert str(raised.value).startswith(
        "config key 'database.url': the URL holds a raw '@' after the host"
    )
    assert_no_piece_of(RAW_PASSWORD, str(raised.value))


@pytest.mark.parametrize(
    "url",
    [
        # Parsed alike by everyone (password "p", host "s"), yet almost surely
        # an unencoded "p@s/s" whose tail any shown URL would carry.
        "postgresql://revenge:p@s/s@db:5432/revenge",
        # SQLAlchemy reads "5432/revenge?password=Qx7" as the password here.
        "postgresql://db:5432/revenge?password=Qx7@Wv9k",
        "postgresql://revenge:pw@db/revenge?application_name=a@b",
    ],
)
def test_a_raw_at_after_the_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"REVENGE_DATABASE_URL": url})
    assert raised.value.key == "database.url"
    assert "%40" in str(raised.value)


def test_a_percent_encoded_password_loads_and_is_masked() -> None:
    url = f"postgresql://revenge:{ENCODED_PASSWORD}@db/revenge?sslpassword=Sp4ssK3yQ"
    config = load_config(environ={"REVENGE_DATABASE_URL": url})
    assert config.database.url == url
    shown = redacted(config)["database"]["url"]
    assert shown == "postgresql://revenge:***@db/revenge?sslpassword=***"
    assert_no_piece_of(RAW_PASSWORD, yaml.safe_dump(redacted(config)))
    assert "Sp4ssK3yQ" not in yaml.safe_dump(redacted(config))


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/revenge/a:b@c.db",
        "sqlite://",
        "postgresql://db/revenge",
        "postgresql://revenge@db/revenge",
        "postgresql://revenge:@db/revenge",
        "postgresql://revenge:p%40ss%3Aw%2Frd@[::1]:5432/revenge?application_name=a%40b",
        "postgresql+psycopg://u:-._~!$&'()*+,;=@h1:5432,h2:5433/x",
    ],
)
def test_urls_that_need_no_encoding_pass(url: str) -> None:
    assert userinfo_problem(url) is None
    assert load_config(environ={"REVENGE_DATABASE_URL": url}).database.url == url


def test_redact_text_masks_secrets_urls_and_connection_strings() -> None:
    text = (
        "failed to resolve host 'Wv9k@127.0.0.1'; "
        'invalid URI "postgresql://u:Qx7%40Wv9k@h/db?sslpassword=Sp4ss&sslmode=require"; '
        "host=h password='a b c' sslpassword=Kz8q dbname=x"
    )
    shown = redact_text(text, ["Qx7@Wv9k", "Wv9k"])
    assert shown == (
        "failed to resolve host '***@127.0.0.1'; "
        'invalid URI "postgresql://u:***@h/db?sslpassword=***&sslmode=require"; '
        "host=h password=*** sslpassword=*** dbname=x"
    )


def test_redact_text_masks_a_secret_that_contains_another_whole() -> None:
    assert redact_text("[Qx7Wv9k]", ["Wv9", "Qx7Wv9k"]) == "[***]"
