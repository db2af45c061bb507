"""`kiosk server`: run the server, migrate, purge, and manage stations and IT accounts."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TypeAlias

from sqlalchemy import select

from kiosk.config import Config, load_config
from kiosk.errors import ServerError
from kiosk.models import utcnow
from kiosk.names import display_name
from kiosk.server import migrate, retention, security
from kiosk.server.db import Database
from kiosk.server.schemas import STATION_ID_PATTERN
from kiosk.server.tables import Station, User

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Sub) -> None:
    """Add the `server` subcommand and its own subcommands."""
    parser = sub.add_parser("server", help="the central server (web UI for IT, API for kiosks)")
    parser.add_argument("--config", help="configuration file (default /etc/kiosk/kiosk.toml)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("run", help="serve the API and the web pages (uvicorn)")
    run.add_argument("--host", help="override [server] host")
    run.add_argument("--port", type=int, help="override [server] port")
    run.set_defaults(func=cmd_run)
    verbs.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)
    verbs.add_parser("purge", help="delete reports older than the retention period").set_defaults(
        func=cmd_purge
    )

    station = verbs.add_parser("station", help="create, revoke and list stations").add_subparsers(
        dest="station_verb", required=True, metavar="ACTION"
    )
    add = station.add_parser("add", help="create a station (or give it a new token); prints it")
    add.add_argument("id", help="the station id, as in the kiosk's [station] id")
    add.add_argument("--name", help="name shown to IT (default: the id)")
    add.add_argument("--school", default="", help="school the station belongs to")
    add.add_argument("--location", default="", help="where in the school")
    add.set_defaults(func=cmd_station_add)
    revoke = station.add_parser("revoke", help="revoke a station's token")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_station_revoke)
    station.add_parser("list", help="list the stations").set_defaults(func=cmd_station_list)

    user = verbs.add_parser("user", help="create and manage IT accounts").add_subparsers(
        dest="user_verb", required=True, metavar="ACTION"
    )
    uadd = user.add_parser("add", help="create an account, or set its password")
    uadd.add_argument("username")
    uadd.add_argument("--full-name", default="", help="shown in the page header")
    uadd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts)"
    )
    uadd.set_defaults(func=cmd_user_add)
    udis = user.add_parser("disable", help="disable an account and end its sessions")
    udis.add_argument("username")
    udis.set_defaults(func=cmd_user_disable)
    user.add_parser("list", help="list the accounts").set_defaults(func=cmd_user_list)


def _database(args: argparse.Namespace) -> tuple[Config, Database]:
    config = load_config(args.config)
    db = Database(config.server.database_url)
    migrate.upgrade(db)
    return config, db


def cmd_run(args: argparse.Namespace) -> int:
    """Serve with uvicorn; workers re-read the config file named in KIOSK_CONFIG."""
    import uvicorn

    config = load_config(args.config)
    server = config.server
    migrate.upgrade(Database(server.database_url))  # once, before the workers start
    if args.config:
        os.environ["KIOSK_CONFIG"] = str(args.config)
    uvicorn.run(
        "kiosk.server.app:app_from_env",
        factory=True,
        host=args.host or server.host,
        port=args.port or server.port,
        workers=server.workers,
        proxy_headers=True,
        server_header=False,
        log_level="info",
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the schema and print the revision."""
    _config, db = _database(args)
    print(f"schema at {migrate.current(db)}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete what is past retention, now."""
    config, db = _database(args)
    days = config.server.retention_days
    deleted = retention.purge(db, days)
    retention.purge_logins(db, config.server.login_window)
    print(f"{deleted} reports older than {days} days deleted")
    return 0


def cmd_station_add(args: argparse.Namespace) -> int:
    """Create a station or renew its token; the token is printed once, stored hashed."""
    import re

    if not re.match(STATION_ID_PATTERN, args.id):
        raise ServerError(
            f"invalid station id {args.id!r}", hint="letters, digits, '.', '_' and '-', 64 at most"
        )
    _config, db = _database(args)
    token = security.new_token()
    with db.write() as session:
        station = session.get(Station, args.id)
        if station is None:
            station = Station(id=args.id, name=args.name or args.id, created_at=utcnow())
            session.add(station)
        elif args.name:
            station.name = args.name
        if args.school:
            station.school = args.school
        if args.location:
            station.location = args.location
        station.school = station.school or ""
        station.location = station.location or ""
        station.problems = station.problems or ""
        station.token_hash = security.token_hash(token)
        station.revoked_at = None
    print(token)
    print(
        f"station {args.id}: put this token in the kiosk's token file (shown only once)",
        file=sys.stderr,
    )
    return 0


def cmd_station_revoke(args: argparse.Namespace) -> int:
    """Revoke a station's token (its reports stay)."""
    _config, db = _database(args)
    with db.write() as session:
        station = session.get(Station, args.id)
        if station is None:
            raise ServerError(f"no station {args.id!r}")
        station.revoked_at = utcnow()
        station.token_hash = None
    print(f"station {args.id} revoked")
    return 0


def cmd_station_list(args: argparse.Namespace) -> int:
    """Print the stations, one a line."""
    _config, db = _database(args)
    with db.read() as session:
        stations = session.scalars(select(Station).order_by(Station.id)).all()
    for s in stations:
        state = "revoked" if s.revoked_at else "active"
        seen = s.last_seen_at.isoformat(timespec="seconds") if s.last_seen_at else "never"
        print(
            f"{s.id}\t{state}\t{display_name(s.name)}\t{display_name(s.school)}\tlast seen {seen}"
        )
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ServerError("the two passwords differ")
    if len(password) < 10:
        raise ServerError("password too short", hint="10 characters at least")
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an IT account or set its password."""
    if not 1 <= len(args.username) <= 64:
        raise ServerError("user names have 1 to 64 characters")
    _config, db = _database(args)
    password_hash = security.hash_password(_read_password(args))
    with db.write() as session:
        user = session.scalar(select(User).where(User.username == args.username))
        if user is None:
            user = User(username=args.username, created_at=utcnow(), full_name="")
            session.add(user)
        user.password_hash = password_hash
        user.disabled = False
        if args.full_name:
            user.full_name = args.full_name
    print(f"user {args.username} ready")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    """Disable an account (its sessions stop working at once)."""
    _config, db = _database(args)
    with db.write() as session:
        user = session.scalar(select(User).where(User.username == args.username))
        if user is None:
            raise ServerError(f"no user {args.username!r}")
        user.disabled = True
    print(f"user {args.username} disabled")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    """Print the accounts."""
    _config, db = _database(args)
    with db.read() as session:
        for u in session.scalars(select(User).order_by(User.username)).all():
            state = "disabled" if u.disabled else "active"
            print(f"{u.username}\t{state}\t{display_name(u.full_name)}")
    return 0
