"""
What every ``revenge`` subcommand shares: the one-line error and reading the
configuration. A leaf module, so the registry (``_main``) can import the
subcommand modules and they need not import it back.
"""

from __future__ import annotations

import argparse
import os

from revenge.config import Config, load_config

# Exit status for bad usage and bad configuration (argparse uses 2 as well).
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the configuration from ``--config`` and ``os.environ``."""
    path: str | None = getattr(args, "config", None)
    return load_config(path, os.environ)
