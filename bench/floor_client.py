"""The floor: log in, LIST the jobs folder and GET every job, nothing else.

Run as a child of overhead.py. It uses only the standard library and keeps
one connection per thread, so its time is what the server and loopback
allow for the same requests the processor makes. It writes no files unless
--results-dir is given: then, after all reads, it writes one small JSON file
per job the way the processor must (temporary file, fsync, os.replace) with
16 threads, and flushes the folder once. That variant is the floor for a
program bound to the processor's durability contract.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import KeepAliveClient

WRITE_THREADS = 16


def write_result(folder: Path, name: str, config: dict) -> None:
    payload = json.dumps({"job": name, "priority": config.get("priority"), "status": "succeeded"}, indent=2)
    temp = folder / f".{name}.json.tmp"
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(descriptor, payload.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temp, folder / f"{name}.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--mount", default="kv")
    parser.add_argument("--jobs-path", default="jobs")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--results-dir", type=Path, help="also write one durable result file per job here")
    args = parser.parse_args(argv)

    password = args.password_file.read_text().splitlines()[0]
    anonymous = KeepAliveClient(args.addr, "", args.namespace)
    login = anonymous.request("POST", f"auth/userpass/login/{args.username}", {"password": password})
    client = KeepAliveClient(args.addr, login["auth"]["client_token"], args.namespace)

    listing = client.request("LIST", f"{args.mount}/metadata/{args.jobs_path}")
    names = [key for key in listing["data"]["keys"] if not key.endswith("/")]

    def read(name: str) -> dict:
        secret = client.request("GET", f"{args.mount}/data/{args.jobs_path}/{name}")
        return secret["data"]["data"]

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        configs = list(pool.map(read, names))
    client.request("POST", "auth/token/revoke-self")

    if args.results_dir is not None:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            for _ in pool.map(write_result, [args.results_dir] * len(names), names, configs):
                pass
        descriptor = os.open(args.results_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    print(f"read {len(names)} jobs, {sum(len(config) for config in configs)} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
