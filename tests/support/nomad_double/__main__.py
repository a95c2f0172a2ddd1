"""Run the Nomad API double in the foreground: `python -m support.nomad_double --port 4646`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .server import NomadDouble

logger = logging.getLogger("support.nomad_double")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m support.nomad_double",
        description="Serve a test double of Nomad's HTTP API on a loopback address.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=4646, help="TCP port; 0 picks a free one")
    parser.add_argument("--node-name", default="lil-pakalolo", help="name of the simulated client node")
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder for allocation directories (task dirs, secrets, logs)",
    )
    parser.add_argument(
        "--acl-token",
        default=None,
        help="require this X-Nomad-Token on every request (default: ACLs disabled)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level, such as DEBUG")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    finished = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_args: finished.set())
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        double = NomadDouble(
            node_name=args.node_name,
            data_dir=args.data_dir,
            acl_token=args.acl_token,
            host=args.host,
            port=args.port,
        ).start()
    except (OSError, ValueError) as error:
        logger.error("cannot start the Nomad double: %s", error)
        return 2
    # Tests and scripts read this line to learn the address and the node. The signal
    # handlers are already in place, so a SIGTERM sent right after it stops cleanly.
    print(f"nomad double ready addr={double.addr} node_id={double.node_id}", flush=True)
    finished.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
