"""Redaction: the effective configuration with no secret in it."""

from __future__ import annotations

import pytest
import yaml

from revenge import providers
from revenge.config import load_config, redact_url, redacted

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
        ("postgresql://user:p@s/s@db:5432/x", "postgresql://user:***@db:5432/x"),
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
