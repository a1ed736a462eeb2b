"""`users …`, `token` and `api`: the people who sign in to the API, their tokens, the API."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings
from liftledger.commands.common import (
    add_command,
    add_group,
    configure_logging,
    csv_list,
    database_connection,
    say,
)
from simulators.command import parse_duration


def _password_of(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.password_file}: {exc.strerror}") from exc
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return None


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add a user (crew, supervisor or admin); crew need --sites."""
    from accounts.users import create_user  # noqa: PLC0415

    with database_connection(settings) as conn:
        user = create_user(
            conn, username=args.name, role=args.role, sites=args.sites or [],
            password=_password_of(args), full_name=args.full_name, signer_address=args.signer,
        )  # fmt: skip
    sites = ",".join(user.sites) or "all sites"
    say(f"user {user.username} ({user.role}, {sites}) added")
    return 0


def cmd_users_set(args: argparse.Namespace, settings: Settings) -> int:
    """Change a user's role, sites, password, signing key or active flag."""
    from accounts.users import update_user  # noqa: PLC0415

    active = None if args.active is None else args.active == "yes"
    with database_connection(settings) as conn:
        user = update_user(
            conn, args.name, role=args.role, sites=args.sites, password=_password_of(args),
            full_name=args.full_name, signer_address=args.signer, active=active,
        )  # fmt: skip
    say(f"user {user.username}: {user.role}, sites {','.join(user.sites) or 'all'}, "
        f"{'active' if user.active else 'deactivated'}")  # fmt: skip
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """List users with role and sites."""
    from accounts.users import list_users  # noqa: PLC0415

    with database_connection(settings) as conn:
        after = 0
        while page := list_users(conn, after_id=after, limit=500):
            for user in page:
                state = "" if user.active else "\tdeactivated"
                say(f"{user.username}\t{user.role}\t{','.join(user.sites) or '*'}{state}")
            after = page[-1].id
    return 0


def cmd_users_revoke_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """End every token a user holds now (tokens issued afterwards work)."""
    from accounts.users import revoke_tokens  # noqa: PLC0415

    with database_connection(settings) as conn:
        user = revoke_tokens(conn, args.name)
    say(f"user {user.username}: every token issued so far is revoked")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a bearer token for a user (for scripts and operators), valid up to 30 days."""
    from accounts.tokens import MAX_TTL_S, issue_token  # noqa: PLC0415
    from accounts.users import get_user  # noqa: PLC0415

    ttl_s = int(parse_duration(args.ttl))
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ConfigError(
            f"--ttl {args.ttl}: a token lives between 1 s and {MAX_TTL_S // 86400}d; "
            "issue a new one when it expires"
        )
    with database_connection(settings) as conn:
        user = get_user(conn, args.name)
    if user is None or not user.active:
        raise ConfigError(f"no active user {args.name}: add one with `liftledger users add`")
    now = dt.datetime.now(dt.UTC)
    print(issue_token(user.username, secret=settings.secret("jwt_secret"), now=now, ttl_s=ttl_s,
                      version=user.token_version))  # fmt: skip
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the HTTP API (OpenAPI at /docs)."""
    from liftledger.services.api import run_api  # noqa: PLC0415

    configure_logging()
    run_api(settings, host=args.host, port=args.port or settings.api_port, workers=args.workers)
    return 0


def add_commands(commands: Any) -> None:
    """`users add|set|list|revoke-tokens`, `token`, `api`."""
    user_commands = add_group(commands, "users", "people who sign in to the API", "users_command")
    for name, handler in (("add", cmd_users_add), ("set", cmd_users_set)):
        sub = add_command(user_commands, name, handler, "name")
        if name == "add":
            sub.add_argument("--role", required=True, choices=["crew", "supervisor", "admin"])
        else:
            sub.add_argument("--role", choices=["crew", "supervisor", "admin"])
            sub.add_argument("--active", choices=["yes", "no"])
        sub.add_argument("--sites", type=csv_list, help="comma-separated site ids (crew)")
        secret = sub.add_mutually_exclusive_group()
        secret.add_argument("--password-file", type=Path, help="read the password from a file")
        secret.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input")  # fmt: skip
        sub.add_argument("--full-name")
        sub.add_argument("--signer", help="address of the EIP-712 key that signs records")
    add_command(user_commands, "list", cmd_users_list)
    add_command(user_commands, "revoke-tokens", cmd_users_revoke_tokens, "name")
    token = add_command(commands, "token", cmd_token, "name")
    token.add_argument("--ttl", default="8h", help="how long it is valid: 30m, 8h, 7d; at most 30d")

    api = add_command(commands, "api", cmd_api)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, help="default: LIFTLEDGER_API_PORT (58000)")
    api.add_argument("--workers", type=int, default=1, help="worker processes")
