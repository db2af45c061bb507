"""`kiosk ship`: the shipper process (systemd unit kiosk-shipper.service)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from kiosk import __version__
from kiosk.config import Config, load_config
from kiosk.delivery.client import ServerClient
from kiosk.delivery.health import read_health, software_version
from kiosk.delivery.shipper import Shipper
from kiosk.errors import ConfigError, DeliveryError, OutboxError
from kiosk.station.outbox import Outbox  # sqlite3 only: no pyudev, no clamd

log = logging.getLogger("kiosk.ship")

CONFIG_POLL = 5.0  # seconds between two looks at a configuration file that does not load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `ship` subcommand."""
    parser = sub.add_parser("ship", help="deliver reports and heartbeats to the central server")
    parser.add_argument("--config", help="configuration file (default /etc/kiosk/kiosk.toml)")
    parser.set_defaults(func=run)


def paths(config: Config) -> tuple[Path, Path]:
    """Return the outbox and health file paths (defaults under the station's data_dir)."""
    data = Path(config.station.data_dir)
    outbox = Path(config.shipper.outbox_file) if config.shipper.outbox_file else data / "outbox.db"
    health = (
        Path(config.shipper.health_file) if config.shipper.health_file else data / "health.json"
    )
    return outbox, health


def read_token(path: Path) -> str:
    """Read the station token (one line)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(f"{path}: cannot read the station token: {exc.strerror}") from exc
    if not token:
        raise DeliveryError(f"{path}: the station token file is empty")
    return token


def wait_for_token(path: Path, stop: threading.Event, every: float) -> str | None:
    """Return the token, waiting for the file to be installed (None if stopped first)."""
    while not stop.is_set():
        try:
            return read_token(path)
        except DeliveryError as exc:
            log.error("%s; waiting", exc)
            stop.wait(every)
    return None


def open_outbox(path: Path, stop: threading.Event, every: float) -> Outbox | None:
    """Open the station's outbox, waiting while it cannot be (station not started yet)."""
    delay = 1.0
    while not stop.is_set():
        try:
            return Outbox(path)
        except OutboxError as exc:
            log.error("%s; waiting", exc)
            stop.wait(delay)
            delay = min(every, delay * 2)
    return None


def wait_for_config(path: str | None, stop: threading.Event, every: float) -> Config | None:
    """Return the configuration, waiting while it does not load (None if stopped first).

    An exit would have systemd start the shipper again every few seconds, forever; the station
    waits the same way (kiosk.station.unconfigured) and its screen tells the teacher to call IT.
    """
    reported = None
    while not stop.is_set():
        try:
            return load_config(path)
        except ConfigError as exc:
            if str(exc) != reported:  # once per distinct error, not once every `every` seconds
                log.error("configuration error: %s; waiting for a valid one", exc)
                reported = str(exc)
            stop.wait(every)
    return None


def run(args: argparse.Namespace) -> int:
    """Deliver until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = wait_for_config(args.config, stop, CONFIG_POLL)
    if config is None:
        return 0
    ship = config.shipper
    if not ship.server_url:
        # Exit 0 and stay stopped (the unit restarts on failure only): nothing to deliver to.
        log.info("no server_url configured: reports stay on this kiosk")
        return 0
    token = wait_for_token(Path(ship.token_file), stop, ship.backoff_max)
    if token is None:
        return 0
    outbox_path, health_path = paths(config)
    outbox = open_outbox(outbox_path, stop, ship.backoff_max)
    if outbox is None:
        return 0
    client = ServerClient(ship.server_url, token, ca_file=ship.ca_file, timeout=ship.timeout)
    shipper = Shipper(
        outbox,
        client,
        config.station.id,
        health=lambda: read_health(health_path, ship.health_max_age),
        software_version=software_version(health_path) or __version__,
        heartbeat_interval=ship.heartbeat_interval,
        backoff_max=ship.backoff_max,
        poll_interval=ship.poll_interval,
    )
    log.info("delivering %s to %s as %s", outbox_path, ship.server_url, config.station.id)
    try:
        shipper.run(stop)
    finally:
        client.close()
        outbox.close()
    log.info("stopped after delivering %d reports", shipper.delivered)
    return 0
