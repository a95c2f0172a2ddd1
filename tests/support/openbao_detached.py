"""Start an OpenBao dev server that outlives this process, and stop it by PID.

Molecule runs its prepare and cleanup steps as separate processes, so the
server cannot live in a pytest fixture there. `start` writes a JSON state
file (pid, addr, root_token, workdir) with mode 0600, because it contains the
root token. `stop` reads it, ends the server's process group and deletes the
file. Both are idempotent.

Usage: python -m support.openbao_detached {start|stop|log} STATE_FILE
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from support.openbao import OpenBaoServer

STOP_TIMEOUT_SECONDS = 10.0


def read_state(state_file: Path) -> dict[str, object] | None:
    """Return the state written by `start`, or None when there is none."""
    try:
        return json.loads(state_file.read_text())
    except FileNotFoundError:
        return None


def is_our_server(pid: int) -> bool:
    """Return True when `pid` is still a `bao server` process.

    The check guards against a PID that the kernel reused for another
    program after the server died.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return len(cmdline) > 1 and Path(cmdline[0].decode()).name == "bao" and cmdline[1] == b"server"


def start(state_file: Path) -> int:
    state = read_state(state_file)
    if state is not None and is_our_server(int(state["pid"])):
        print(f"OpenBao already running at {state['addr']} (pid {state['pid']})")
        return 0

    server = OpenBaoServer().start()
    assert server.process is not None
    state = {
        "pid": server.process.pid,
        "addr": server.addr,
        "root_token": server.root_token,
        "workdir": str(server.workdir),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    print(f"OpenBao started at {server.addr} (pid {server.process.pid})")
    return 0


def stop(state_file: Path) -> int:
    state = read_state(state_file)
    if state is None:
        print(f"no OpenBao state in {state_file}: nothing to stop")
        return 0

    pid = int(state["pid"])
    if is_our_server(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while is_our_server(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_our_server(pid):
            os.killpg(pid, signal.SIGKILL)
        print(f"OpenBao (pid {pid}) stopped")
    else:
        print(f"OpenBao (pid {pid}) was not running")

    shutil.rmtree(str(state["workdir"]), ignore_errors=True)
    state_file.unlink()
    return 0


def show_log(state_file: Path) -> int:
    """Print the end of the server log, with the root token masked."""
    state = read_state(state_file)
    if state is None:
        print(f"no OpenBao state in {state_file}")
        return 1
    server = OpenBaoServer(root_token=str(state["root_token"]), workdir=Path(str(state["workdir"])))
    print(server.log_tail(lines=100))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "log"])
    parser.add_argument("state_file", type=Path, help="JSON file that records the running server")
    args = parser.parse_args(argv)
    actions = {"start": start, "stop": stop, "log": show_log}
    return actions[args.action](args.state_file)


if __name__ == "__main__":
    sys.exit(main())
