"""``revenge migrate`` and ``revenge user add``: the commands that use the database."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from revenge.cli._common import EXIT_USAGE, CommandError, config_from_args

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from revenge.config import Config


def _engine(config: Config) -> Engine:
    from revenge.db import DatabaseUrlError, create_database_engine

    try:
        return create_database_engine(
            config.database.url, application_name=f"revenge cli {config.node_id}"
        )
    except DatabaseUrlError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def _unreachable(config: Config, error: Exception) -> CommandError:
    from revenge.config import redact_url
    from revenge.db import describe_database_error

    return CommandError(
        f"database {redact_url(config.database.url)} failed: {describe_database_error(error)}"
    )


def migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from revenge.db import MigrationLockTimeout, upgrade_schema

    config = config_from_args(args)
    engine = _engine(config)
    try:
        upgrade = upgrade_schema(engine)
    except (SQLAlchemyError, MigrationLockTimeout) as error:
        raise _unreachable(config, error) from None
    finally:
        engine.dispose()
    if upgrade.changed:
        sys.stdout.write(
            f"database schema upgraded from {upgrade.before or 'empty'} to {upgrade.after}\n"
        )
    else:
        sys.stdout.write(f"database schema is current at {upgrade.after}\n")
    return 0


def configure_user_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the new user's name (a-z, 0-9, '.', '_', '-')")
    parser.add_argument("--admin", action="store_true", help="make the user an administrator")


def user_add(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from revenge.db import MigrationLockTimeout, upgrade_schema, write_transaction
    from revenge.users import USER_NAME_RULE, UserExists, create_user, is_valid_user_name

    name: str = args.name
    if not is_valid_user_name(name):
        raise CommandError(f"invalid user name {name!r}: use {USER_NAME_RULE}", EXIT_USAGE)
    config = config_from_args(args)
    engine = _engine(config)
    try:
        # The first command on a new installation is often this one.
        upgrade_schema(engine)
        with write_transaction(engine) as connection:
            created = create_user(
                connection,
                name,
                is_admin=args.admin,
                node_id=config.node_id,
                actor=None,
                via="cli",
            )
    except UserExists as error:
        raise CommandError(str(error)) from None
    except (SQLAlchemyError, MigrationLockTimeout) as error:
        raise _unreachable(config, error) from None
    finally:
        engine.dispose()
    role = "administrator" if created.user.is_admin else "user"
    sys.stderr.write(
        f"created {role} {name!r}; its token follows, shown this once and stored only hashed:\n"
    )
    sys.stdout.write(created.token + "\n")
    return 0
