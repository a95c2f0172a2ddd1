"""The floor: log in, LIST the jobs folder and GET every job, nothing else.

Run as a child of overhead.py. It uses only the standard library and keeps
one connection per thread, so its time is what the server and loopback
allow for the same requests the processor makes. It writes no files.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import KeepAliveClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--mount", default="kv")
    parser.add_argument("--jobs-path", default="jobs")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    password = args.password_file.read_text().splitlines()[0]
    anonymous = KeepAliveClient(args.addr, "", args.namespace)
    login = anonymous.request("POST", f"auth/userpass/login/{args.username}", {"password": password})
    client = KeepAliveClient(args.addr, login["auth"]["client_token"], args.namespace)

    listing = client.request("LIST", f"{args.mount}/metadata/{args.jobs_path}")
    names = [key for key in listing["data"]["keys"] if not key.endswith("/")]

    def read(name: str) -> int:
        secret = client.request("GET", f"{args.mount}/data/{args.jobs_path}/{name}")
        return len(secret["data"]["data"])

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        fields = sum(pool.map(read, names))
    client.request("POST", "auth/token/revoke-self")
    print(f"read {len(names)} jobs, {fields} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
