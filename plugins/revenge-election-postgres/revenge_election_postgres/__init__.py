"""
``revenge-election-postgres``: a Revenge election provider for clusters that
share a PostgreSQL database but cannot open raft ports between their nodes.

``election.backend: postgres`` makes leadership a lease row in that
database; its settings are the ``postgres_election.*`` keys. See README.md.
"""

from revenge_election_postgres._election import (
    PostgresElection,
    PostgresElectionError,
    create_postgres_election,
    libpq_url,
)
from revenge_election_postgres._lease import LeaseTable, LeaseView
from revenge_election_postgres._settings import SECTION, PostgresElectionSettings

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
