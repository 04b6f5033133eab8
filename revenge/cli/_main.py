"""
The ``revenge`` command: argparse subcommands from one registry.

To add a command, write ``configure(parser)`` and ``run(args) -> int``
functions (in their own module; import heavy things inside ``run`` so that
``revenge config check`` stays fast) and add a :class:`Command` to
:data:`COMMANDS`. A command with ``uses_config=True`` gets ``--config PATH``
and reads its configuration with :func:`config_from_args`.

Errors a user can fix are reported as one line ``revenge: <message>`` on
stderr, without a traceback: raise :class:`CommandError` (exit code of your
choice, default 1) or let a :class:`revenge.config.ConfigError` escape (exit
code 2, as for a usage error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import yaml

from revenge import __version__
from revenge.cli._cluster import cluster_status, configure_cluster_status
from revenge.cli._common import EXIT_USAGE, CommandError, config_from_args
from revenge.cli._database import (
    configure_user_add,
    configure_user_list,
    configure_user_name,
    migrate,
    user_add,
    user_delete,
    user_list,
    user_rotate_token,
)
from revenge.cli._storage import storage_init
from revenge.config import ConfigError, redacted, resolve_config_path, unknown_environment

PROG = "revenge"

# 128 + SIGPIPE: what a shell shows for a program that wrote to a closed pipe.
EXIT_BROKEN_PIPE = 141

@dataclass(frozen=True)
class Command:
    """One subcommand: ``words`` is its path, e.g. ``("config", "check")``."""

    words: tuple[str, ...]
    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    uses_config: bool = False
    description: str | None = field(default=None)


# -- revenge config check ------------------------------------------------------


def _config_check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    path = resolve_config_path(args.config)
    source = f"file {path}" if path is not None else "no file"
    out = sys.stdout
    out.write(
        f"# effective configuration ({source} + environment; secrets shown as ***)\n"
    )
    out.write(yaml.safe_dump(redacted(config, sections=True), sort_keys=False))
    ignored = unknown_environment(os.environ)
    if ignored:
        out.write(
            "# ignored environment variables (not Revenge settings): "
            + ", ".join(ignored)
            + "\n"
        )
    return 0


# -- revenge raft secret -------------------------------------------------------


def _raft_secret(args: argparse.Namespace) -> int:
    # Imported here: the other commands need not pay for it.
    from revenge.config import generate_secret

    sys.stdout.write(generate_secret() + "\n")
    return 0


# -- the registry ----------------------------------------------------------------
# The other commands live in their own modules (_database, _storage,
# _cluster), which import only _common; what they need that is slow to import
# they import when they run.


# Help for the first word of multi-word commands.
GROUP_HELP: dict[str, str] = {
    "cluster": "inspect the cluster",
    "config": "inspect the configuration",
    "raft": "help with the raft election",
    "storage": "manage the storage backend",
    "user": "manage users",
}

COMMANDS: tuple[Command, ...] = (
    Command(
        words=("config", "check"),
        help="validate the configuration and print it with secrets redacted",
        description=(
            "Load the configuration as the server would (file, then REVENGE_* "
            "environment variables), print the effective values as YAML with "
            "secrets redacted, and exit 2 with one line naming the key if it "
            "is invalid."
        ),
        run=_config_check,
        uses_config=True,
    ),
    Command(
        words=("migrate",),
        help="bring the database schema up to date",
        description=(
            "Apply pending database migrations (the server also does this on "
            "start). Safe to run while servers are starting: migrations take "
            "a lock, and whoever comes second finds the schema current."
        ),
        run=migrate,
        uses_config=True,
    ),
    Command(
        words=("user", "add"),
        help="create a user and print its API token once",
        description=(
            "Create a user (an administrator with --admin) and print its API "
            "token on stdout. The token is shown this once: only its hash is stored."
        ),
        run=user_add,
        configure=configure_user_add,
        uses_config=True,
    ),
    Command(
        words=("user", "list"),
        help="list the users: name, role, when created",
        description=(
            "List every user with its role and creation time (no tokens: only their "
            "hashes are stored)."
        ),
        run=user_list,
        configure=configure_user_list,
        uses_config=True,
    ),
    Command(
        words=("user", "delete"),
        help="delete a user; its token stops working at once",
        description=(
            "Delete a user and record it in the activity log. Its avatar object, if any, "
            "is removed by the next avatar sweep."
        ),
        run=user_delete,
        configure=configure_user_name,
        uses_config=True,
    ),
    Command(
        words=("user", "rotate-token"),
        help="give a user a new API token and print it once",
        description=(
            "Replace a user's API token: the new one is printed on stdout this once, "
            "and the old one stops working as the command ends."
        ),
        run=user_rotate_token,
        configure=configure_user_name,
        uses_config=True,
    ),
    Command(
        words=("storage", "init"),
        help="create the bucket (or directory) and prove write, read and delete",
        description=(
            "Make the configured storage ready: with s3, create the bucket "
            "unless it exists; with local, create the directory. Then write, "
            "read back and delete a probe object. Safe to run again. Exits 1 "
            "with one line naming the endpoint and bucket when it cannot."
        ),
        run=storage_init,
        uses_config=True,
    ),
    Command(
        words=("cluster", "status"),
        help="show a node's view of the election (leader, term, quorum, peers)",
        description=(
            "Ask a node's GET /api/v1/cluster with an admin token and print "
            "its answer. Exits 0 when a leader with quorum is known, 1 when "
            "not, and with one line on stderr when the node cannot be asked."
        ),
        run=cluster_status,
        configure=configure_cluster_status,
        uses_config=True,
    ),
    Command(
        words=("raft", "secret"),
        help="print a new random raft.secret",
        description=(
            "Print a new random secret for raft.secret (REVENGE_RAFT_SECRET): 48 random "
            "bytes as URL-safe base64. Give every node of a cluster the same one; "
            "startup refuses a secret shorter than 32 bytes or with little entropy."
        ),
        run=_raft_secret,
    ),
)


# argparse exposes this type only under a private name.
_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser for ``commands``; each sets ``args.run``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Revenge media server administration."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    # One subparsers action per parser that has subcommands, created on demand.
    actions: dict[tuple[str, ...], _Subparsers] = {}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}

    def subparsers(path: tuple[str, ...]) -> _Subparsers:
        if path not in actions:
            actions[path] = parsers[path].add_subparsers(
                title="commands", metavar="COMMAND", required=True
            )
        return actions[path]

    for command in commands:
        for depth in range(1, len(command.words)):
            group = command.words[:depth]
            if group not in parsers:
                word = group[-1]
                parsers[group] = subparsers(group[:-1]).add_parser(
                    word, help=GROUP_HELP.get(word), description=GROUP_HELP.get(word)
                )
        leaf = subparsers(command.words[:-1]).add_parser(
            command.words[-1],
            help=command.help,
            description=command.description or command.help,
        )
        if command.uses_config:
            leaf.add_argument(
                "--config",
                metavar="PATH",
                default=None,
                help="YAML config file (default: revenge.yaml if present)",
            )
        if command.configure is not None:
            command.configure(leaf)
        leaf.set_defaults(run=command.run)
    return parser


def _fail(message: str, exit_code: int) -> int:
    sys.stderr.write(f"{PROG}: {' '.join(message.split())}\n")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    """Run the ``revenge`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        # argparse exits on --help and on usage errors; report, don't exit,
        # so main() can be called from tests and other code.
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        status = run(args)
        # Inside the try: with a pipe, the last of the output leaves here.
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as error:
        return _fail(str(error), EXIT_USAGE)
    except CommandError as error:
        return _fail(str(error), error.exit_code)


def _reader_went_away() -> int:
    """
    The reader of stdout closed it (``revenge config check | head``): stop
    quietly, as a program killed by SIGPIPE would, with its status. What is
    still buffered goes nowhere, so the flush at exit cannot fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is no real file (a test's capture): nothing will flush to it
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE
