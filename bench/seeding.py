"""Seeding: the role's Vault step against a playbook that writes one entry per task.

Both seed the same N job entries into a fresh namespace of one OpenBao dev
server on loopback, then run again unchanged:

- role: `ansible-playbook site.yml -i inventory/demo --tags
  vault_batch_client_vault`, with the entries as a folder of JSON files. Its
  time includes the namespaces, mounts, policy and user it also creates.
- baseline: bench/baseline-seed.yml, a loop of
  community.hashi_vault.vault_kv2_write over the same entries, into a
  namespace whose KV mount this script creates beforehand, untimed.

Each run is timed from start to exit, and the "changed" count comes from the
play recap. The baseline costs a module run per entry, which is minutes at
N = 1,000 on a small machine. By default it therefore seeds only
`--baseline-jobs` entries (plus one run with none, for the playbook's fixed
cost), and its time for N entries is estimated linearly:
t(M) + (t(M) - t(0)) * (N - M) / M. Pass `--baseline-jobs N` to measure it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    OUT_DIR,
    ROOT,
    OpenBaoServer,
    base_env,
    job_config,
    job_name,
    median,
    progress,
    write_results,
)

RECAP_LINE = re.compile(
    r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)
PLAYBOOK_TIMEOUT_SECONDS = 1800


def ansible_env(
    server: OpenBaoServer, demo_dir: Path, repo: Path = ROOT, processor_password: str = ""
) -> dict[str, str]:
    env = base_env()
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "VAULT_ADDR": server.addr,
            "VAULT_TOKEN": server.root_token,
            "DEMO_DIR": str(demo_dir),
            # The re-run must pass the same password, or the role sets it again.
            "DEMO_PROCESSOR_PASSWORD": processor_password or secrets.token_urlsafe(18),
        }
    )
    return env


def run_playbook(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> dict[str, Any]:
    """Run ansible-playbook; return seconds and the recap's changed count, or stop on failure."""
    started = time.perf_counter()
    with log_path.open("wb") as log:
        completed = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=PLAYBOOK_TIMEOUT_SECONDS,
            check=False,
        )
    seconds = time.perf_counter() - started
    output = log_path.read_text(errors="replace")
    recap = RECAP_LINE.findall(output)
    if completed.returncode != 0 or not recap:
        tail = "\n".join(output.splitlines()[-25:])
        raise SystemExit(f"ansible-playbook exited with {completed.returncode}; see {log_path}:\n{tail}")
    failed = sum(int(line[3]) for line in recap)
    if failed:
        raise SystemExit(f"ansible-playbook reported {failed} failed tasks; see {log_path}")
    return {"seconds": seconds, "changed": sum(int(line[1]) for line in recap)}


def write_jobs_dir(folder: Path, jobs: int) -> dict[str, dict[str, Any]]:
    """Write one JSON file per job entry and return the same entries as a mapping."""
    folder.mkdir(parents=True)
    entries = {job_name(i): job_config(i) for i in range(jobs)}
    for name, config in entries.items():
        (folder / f"{name}.json").write_text(json.dumps(config) + "\n")
    return entries


def role_run(
    server: OpenBaoServer, repo: Path, work: Path, jobs_dir: Path, parent: str, password: str, label: str
) -> dict[str, Any]:
    extra = {
        "vault_batch_client_vault_parent_namespace": parent,
        "vault_batch_client_vault_create_parent_namespace": True,
        "vault_batch_client_jobs_dir": str(jobs_dir),
        "vault_batch_client_jobs": {},
    }
    extra_file = work / f"role-{parent}.json"
    extra_file.write_text(json.dumps(extra))
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "site.yml",
        "-i",
        "inventory/demo",
        "--tags",
        "vault_batch_client_vault",
        "-e",
        f"@{extra_file}",
    ]
    return run_playbook(
        argv, ansible_env(server, work / "demo", repo, password), repo, OUT_DIR / f"seeding-role-{label}.log"
    )


def baseline_run(
    server: OpenBaoServer, work: Path, entries: dict[str, Any], namespace: str, label: str
) -> dict[str, Any]:
    extra = {
        "bench_vault_addr": server.addr,
        "bench_vault_token": server.root_token,
        "bench_vault_namespace": namespace,
        "bench_jobs": entries,
    }
    extra_file = work / f"baseline-{namespace.replace('/', '-')}.json"
    extra_file.write_text(json.dumps(extra))
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(ROOT / "bench" / "baseline-seed.yml"),
        "-i",
        "localhost,",
        "-e",
        f"@{extra_file}",
    ]
    return run_playbook(
        argv, ansible_env(server, work / "demo"), ROOT, OUT_DIR / f"seeding-baseline-{label}.log"
    )


def prepare_baseline_namespace(server: OpenBaoServer, namespace: str) -> None:
    server.create_namespace_chain(namespace)
    server.request("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "2"}}, namespace=namespace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="job entries N")
    parser.add_argument("--repeats", type=int, default=3, help="role runs (first run and re-run each)")
    parser.add_argument(
        "--baseline-repeats", type=int, default=1, help="baseline runs (first run and re-run each)"
    )
    parser.add_argument(
        "--baseline-jobs",
        type=int,
        default=100,
        help="entries the baseline seeds; fewer than N gives an estimate",
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository whose site.yml and role to run")
    args = parser.parse_args(argv)

    if not (args.repo / "roles" / "vault_batch_client").is_dir():
        raise SystemExit(f"no roles/vault_batch_client in {args.repo}: merge the role first or pass --repo")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-seeding-"))
    server = OpenBaoServer().start()
    runs: dict[str, list[dict[str, Any]]] = {
        "role_first": [],
        "role_rerun": [],
        "baseline_first": [],
        "baseline_rerun": [],
    }
    baseline_jobs = min(args.baseline_jobs, args.jobs)
    empty_seconds: float | None = None
    try:
        jobs_dir = work / "jobs"
        entries = write_jobs_dir(jobs_dir, args.jobs)
        baseline_entries = dict(list(entries.items())[:baseline_jobs])
        if baseline_jobs < args.jobs:
            prepare_baseline_namespace(server, "benchempty/client_population/batch")
            empty = baseline_run(server, work, {}, "benchempty/client_population/batch", "empty")
            empty_seconds = empty["seconds"]
            progress(f"baseline with no entries: {empty_seconds:.1f} s")
        for repeat in range(max(args.repeats, args.baseline_repeats)):
            if repeat < args.repeats:
                parent = f"benchrole{repeat}"
                password = secrets.token_urlsafe(18)
                for kind in ("first", "rerun"):
                    run = role_run(server, args.repo, work, jobs_dir, parent, password, f"{kind}-{repeat}")
                    runs[f"role_{kind}"].append(run)
                    progress(f"role {kind} {repeat + 1}: {run['seconds']:.1f} s, changed={run['changed']}")
            if repeat < args.baseline_repeats:
                namespace = f"benchbase{repeat}/client_population/batch"
                prepare_baseline_namespace(server, namespace)
                for kind in ("first", "rerun"):
                    run = baseline_run(server, work, baseline_entries, namespace, f"{kind}-{repeat}")
                    if empty_seconds is not None:
                        measured = run["seconds"]
                        per_entry = (measured - empty_seconds) / baseline_jobs
                        run["measured_seconds"] = measured
                        run["seconds"] = measured + per_entry * (args.jobs - baseline_jobs)
                    runs[f"baseline_{kind}"].append(run)
                    progress(
                        f"baseline {kind} {repeat + 1}: {run['seconds']:.1f} s, changed={run['changed']}"
                    )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = {
        name: {
            "median_seconds": round(median(r["seconds"] for r in items), 3),
            "seconds": [round(r["seconds"], 3) for r in items],
            "changed": [r["changed"] for r in items],
            "measured_seconds": [round(r["measured_seconds"], 3) for r in items if "measured_seconds" in r],
        }
        for name, items in runs.items()
        if items
    }
    path = write_results(
        "seeding",
        {
            "jobs": args.jobs,
            "repeats": args.repeats,
            "baseline_jobs": baseline_jobs,
            "baseline_empty_seconds": empty_seconds,
            "runs": summary,
        },
    )
    progress(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
