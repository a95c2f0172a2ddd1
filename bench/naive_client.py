"""The naive baseline: the loop one would write first with hvac.

Run as a child of overhead.py. It logs in, lists the jobs folder, reads each
job in turn and writes each result with json.dump: one request at a time, a
new file per job, no temporary file and no fsync.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import hvac


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--mount", default="kv")
    parser.add_argument("--jobs-path", default="jobs")
    parser.add_argument("--results-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    password = args.password_file.read_text().splitlines()[0]
    client = hvac.Client(url=args.addr, namespace=args.namespace, token="")
    client.auth.userpass.login(args.username, password)
    listing = client.secrets.kv.v2.list_secrets(path=args.jobs_path, mount_point=args.mount)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    names = listing["data"]["keys"]
    for name in names:
        secret = client.secrets.kv.v2.read_secret_version(
            path=f"{args.jobs_path}/{name}", mount_point=args.mount, raise_on_deleted_version=True
        )
        config = secret["data"]["data"]
        result = {
            "job": name,
            "priority": config.get("priority", "medium"),
            "status": "succeeded",
            "finished_at": datetime.now(UTC).isoformat(),
        }
        with (args.results_dir / f"{name}.json").open("w") as handle:
            json.dump(result, handle, indent=2)
    client.auth.token.revoke_self()
    print(f"processed {len(names)} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
