"""
The ``revenge`` administration command (console script ``revenge.cli:main``).
"""

from revenge.cli._main import (
    COMMANDS,
    Command,
    CommandError,
    build_parser,
    config_from_args,
    main,
)

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "build_parser",
    "config_from_args",
    "main",
]
