"""Helpers for testing Revenge and its providers against real processes."""

from revenge.testing._process import ServerProcess, twistd_executable, wait_until

__all__ = ["ServerProcess", "twistd_executable", "wait_until"]
