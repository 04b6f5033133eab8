"""The ``postgres_election.*`` configuration section (entry point group ``revenge.config``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from revenge.config import ConfigError, duration_setting, url_setting

SECTION = "postgres_election"

# A plain, unquoted PostgreSQL identifier, so the name an operator reads in
# psql is the name used here.
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_URL_SCHEMES = ("postgresql://", "postgresql+psycopg://")


@dataclass(frozen=True)
class PostgresElectionSettings:
    """How the lease is kept; see the package's README for the algorithm."""

    # Empty: the database of database.url, where Revenge keeps everything else.
    url: str = url_setting()
    # The lease table, created on start when missing.
    table: str = "revenge_election_lease"
    # How long a renewal keeps the lease (by the database's clock), and how
    # long the holder trusts it (by its own monotonic clock, from the
    # renewal's start). A crashed leader is replaced within lease + renew_interval.
    lease: float = duration_setting(5.0)
    # How often the holder renews, and how often the others try to take over.
    renew_interval: float = duration_setting(1.0)

    def __post_init__(self) -> None:
        if not _TABLE_NAME.match(self.table):
            raise ConfigError(
                "expected a lower-case PostgreSQL identifier (letters, digits and _, "
                f"at most 63), got {self.table!r}",
                key=f"{SECTION}.table",
            )
        if self.url and not self.url.startswith(_URL_SCHEMES):
            # Never echo the URL: it may carry a password.
            raise ConfigError(
                "expected a postgresql:// URL, or empty for database.url",
                key=f"{SECTION}.url",
            )
        if not self.renew_interval > 0:
            raise ConfigError(
                f"must be greater than 0, got {self.renew_interval!r}",
                key=f"{SECTION}.renew_interval",
            )
        if not self.lease >= 2 * self.renew_interval:
            raise ConfigError(
                f"must be at least twice {SECTION}.renew_interval "
                f"({self.renew_interval:g}s), so that one late renewal does not "
                f"end leadership; got {self.lease:g}s",
                key=f"{SECTION}.lease",
            )
