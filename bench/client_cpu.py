"""Client CPU per KV read: the processor, hvac and leaner HTTP clients.

Reads the same N jobs one at a time through each client, in rotating order,
and reports the median of this process's CPU time (user + system) per
request. The server's CPU is not counted. Not part of `make bench`; it
explains where the processor's read phase spends its time.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from benchlib import (
    ROOT,
    KeepAliveClient,
    OpenBaoServer,
    interleaved,
    job_config,
    job_name,
    median,
    seed_batch_namespace,
    seed_jobs,
)

sys.path.insert(0, str(ROOT / "files"))
from batch_processor.vault import ConnectionSettings, RetryPolicy, VaultSession


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    server = OpenBaoServer().start()
    try:
        vault = seed_batch_namespace(server, "cpu/batch")
        seed_jobs(server, vault, [(job_name(i), job_config(i)) for i in range(args.jobs)])
        session = VaultSession(
            ConnectionSettings(addr=server.addr, namespace=vault.namespace), RetryPolicy(), threading.Event()
        )
        session.login(vault.username, vault.password)
        token = session.client.token
        headers = {"X-Vault-Token": token, "X-Vault-Namespace": vault.namespace}
        plain = requests.Session()
        plain.trust_env = False
        pool = urllib3.PoolManager()
        stdlib = KeepAliveClient(server.addr, token, vault.namespace)
        url = f"{server.addr}/v1/{vault.mount}/data/{vault.jobs_path}/"

        clients: dict[str, Callable[[str], Any]] = {
            "processor read_job": lambda name: session.read_job(vault.mount, vault.jobs_path, name),
            "hvac + requests": lambda name: session.client.secrets.kv.v2.read_secret_version(
                path=f"{vault.jobs_path}/{name}", mount_point=vault.mount, raise_on_deleted_version=False
            ),
            "requests alone": lambda name: plain.get(url + name, headers=headers).json(),
            "urllib3": lambda name: json.loads(pool.request("GET", url + name, headers=headers).data),
            "http.client": lambda name: stdlib.request("GET", f"{vault.mount}/data/{vault.jobs_path}/{name}"),
        }
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        for _, name in interleaved(args.repeats, list(clients)):
            read = clients[name]
            started = time.process_time()
            for index in range(args.jobs):
                read(job_name(index))
            cpu[name].append((time.process_time() - started) / args.jobs)
        session.revoke_tokens()
        session.close()
    finally:
        server.stop()

    print(f"client CPU per KV read, median of {args.repeats} runs of {args.jobs} reads")
    for name, values in cpu.items():
        print(f"  {name:28} {median(values) * 1e6:6.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
