"""
The ``revenge`` administration command (console script ``revenge.cli:main``).
"""

from revenge.cli._common import CommandError, config_from_args
from revenge.cli._main import COMMANDS, Command, build_parser, main

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "build_parser",
    "config_from_args",
    "main",
]
