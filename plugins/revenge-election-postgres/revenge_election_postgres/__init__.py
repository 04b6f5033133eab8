"""
``revenge-election-postgres``: a Revenge election provider for clusters that
share a PostgreSQL database but cannot open raft ports between their nodes.

``election.backend: postgres`` makes leadership a lease row in that
database; its settings are the ``postgres_election.*`` keys. See README.md.

Only the settings are imported eagerly. Revenge reads every installed config
section (this package's included) before twistd chooses its reactor, and the
provider's modules import parts of Revenge that install the default one; so
they load when first used, through the entry point or an attribute below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from revenge_election_postgres._settings import SECTION, PostgresElectionSettings

if TYPE_CHECKING:
    from revenge_election_postgres._election import (
        PostgresElection,
        PostgresElectionError,
        create_postgres_election,
        libpq_url,
    )
    from revenge_election_postgres._lease import LeaseTable, LeaseView

__all__ = [
    "SECTION",
    "LeaseTable",
    "LeaseView",
    "PostgresElection",
    "PostgresElectionError",
    "PostgresElectionSettings",
    "create_postgres_election",
    "libpq_url",
]

_LAZY = {
    "LeaseTable": "revenge_election_postgres._lease",
    "LeaseView": "revenge_election_postgres._lease",
    "PostgresElection": "revenge_election_postgres._election",
    "PostgresElectionError": "revenge_election_postgres._election",
    "create_postgres_election": "revenge_election_postgres._election",
    "libpq_url": "revenge_election_postgres._election",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
