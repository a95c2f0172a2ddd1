"""Start the Nomad API double as a process that outlives this one, and stop it by PID.

Molecule runs prepare and cleanup as separate processes, so the double
cannot live in a pytest fixture there. `start` runs `python -m
support.nomad_double` in its own session, waits for its ready line and
writes a JSON state file (pid, addr, node_id, data_dir, log). `stop` reads
it, sends SIGTERM to the process group and deletes the file. Both are
idempotent.

Usage: python -m support.nomad_double_detached {start|stop} STATE_FILE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

READY_LINE = re.compile(r"nomad double ready addr=(?P<addr>\S+) node_id=(?P<node_id>\S+)")
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


def read_state(state_file: Path) -> dict[str, object] | None:
    """Return the state written by `start`, or None when there is none."""
    try:
        return json.loads(state_file.read_text())
    except FileNotFoundError:
        return None


def is_our_double(pid: int) -> bool:
    """Return True when `pid` still runs the double, not a program that reused the PID."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return b"support.nomad_double" in cmdline


def start(state_file: Path, node_name: str) -> int:
    state = read_state(state_file)
    if state is not None and is_our_double(int(state["pid"])):
        print(f"Nomad double already running at {state['addr']} (pid {state['pid']})")
        return 0

    data_dir = state_file.parent / "nomad-double"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_file.parent / "nomad-double.log"
    tests_dir = Path(__file__).resolve().parents[1]
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "support.nomad_double",
                "--port",
                "0",
                "--node-name",
                node_name,
                "--data-dir",
                str(data_dir),
            ],
            cwd=tests_dir,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    match = None
    while match is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = READY_LINE.search(line)
    if match is None:
        os.killpg(process.pid, signal.SIGTERM)
        print(f"the Nomad double did not start: see {log_file}", file=sys.stderr)
        return 1

    state = {
        "pid": process.pid,
        "addr": match["addr"],
        "node_id": match["node_id"],
        "data_dir": str(data_dir),
        "log": str(log_file),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state))
    print(f"Nomad double started at {match['addr']} (pid {process.pid})")
    return 0


def stop(state_file: Path) -> int:
    state = read_state(state_file)
    if state is None:
        print(f"no Nomad double state in {state_file}: nothing to stop")
        return 0

    pid = int(state["pid"])
    if is_our_double(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while is_our_double(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_our_double(pid):
            os.killpg(pid, signal.SIGKILL)
        print(f"Nomad double (pid {pid}) stopped")
    else:
        print(f"Nomad double (pid {pid}) was not running")
    state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("state_file", type=Path, help="JSON file that records the running double")
    parser.add_argument("--node-name", default="lil-pakalolo", help="name of the simulated client node")
    args = parser.parse_args(argv)
    if args.action == "start":
        return start(args.state_file, args.node_name)
    return stop(args.state_file)


if __name__ == "__main__":
    sys.exit(main())
