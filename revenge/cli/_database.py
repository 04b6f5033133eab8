"""``revenge migrate`` and ``revenge user add``: the commands that use the database."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

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


def _user_transaction(args: argparse.Namespace, work: Any) -> Any:
    """Run ``work(connection, config)`` in one transaction on a current schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from revenge.db import MigrationLockTimeout, upgrade_schema, write_transaction

    config = config_from_args(args)
    engine = _engine(config)
    try:
        upgrade_schema(engine)
        with write_transaction(engine) as connection:
            return work(connection, config)
    except (SQLAlchemyError, MigrationLockTimeout) as error:
        raise _unreachable(config, error) from None
    finally:
        engine.dispose()


def configure_user_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON array of users")


def user_list(args: argparse.Namespace) -> int:
    import json

    from revenge.users import list_users

    found = _user_transaction(args, lambda connection, config: list_users(connection))
    if args.json:
        rows = [
            {
                "name": user.name,
                "admin": user.is_admin,
                "created_at": user.created_at.isoformat(),
                "has_avatar": user.avatar_key is not None,
            }
            for user in found
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for user in found:
        role = "admin" if user.is_admin else "user"
        created = user.created_at.strftime("%Y-%m-%d %H:%M")
        sys.stdout.write(f"{user.name}\t{role}\tcreated {created}\n")
    if not found:
        sys.stderr.write("no users yet: create the first with `revenge user add NAME --admin`\n")
    return 0


def configure_user_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the user's name")


def _checked_name(args: argparse.Namespace) -> str:
    from revenge.users import USER_NAME_RULE, is_valid_user_name

    name: str = args.name
    if not is_valid_user_name(name):
        raise CommandError(f"invalid user name {name!r}: use {USER_NAME_RULE}", EXIT_USAGE)
    return name


def user_delete(args: argparse.Namespace) -> int:
    from revenge.users import delete_user

    name = _checked_name(args)
    deleted = _user_transaction(
        args,
        lambda connection, config: delete_user(
            connection, name, node_id=config.node_id, actor=None, via="cli"
        ),
    )
    if deleted is None:
        raise CommandError(f"no user {name!r}")
    sys.stdout.write(f"deleted user {name!r}\n")
    if deleted.avatar_key is not None:
        # The command does not reach the storage; nothing points to the object
        # any more, so the avatar sweep removes it (docs/jobs.md).
        sys.stdout.write(f"its avatar {deleted.avatar_key} goes with the next avatar sweep\n")
    return 0


def user_rotate_token(args: argparse.Namespace) -> int:
    from revenge.users import rotate_token

    name = _checked_name(args)
    rotated = _user_transaction(
        args,
        lambda connection, config: rotate_token(
            connection, name, node_id=config.node_id, actor=None, via="cli"
        ),
    )
    if rotated is None:
        raise CommandError(f"no user {name!r}")
    sys.stderr.write(
        f"new token for {name!r}, shown this once; the old one no longer works:\n"
    )
    sys.stdout.write(rotated.token + "\n")
    return 0
