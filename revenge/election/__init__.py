"""Leader election: the contract and the built-in ``standalone`` provider."""

from revenge.election._interface import IElection, LeadershipChange
from revenge.election._standalone import StandaloneElection

__all__ = ["IElection", "LeadershipChange", "StandaloneElection"]
