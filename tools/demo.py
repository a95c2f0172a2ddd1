"""Run the whole flow on this machine: OpenBao, the role, one batch, the summary.

`make demo` calls this. It starts a real OpenBao dev server and the Nomad
API double (from tests/support) on loopback ports and applies site.yml to
localhost with the demo inventory. With vault_batch_client_run_now set, the
role registers the periodic job and forces one launch, so the batch runs
with the job's own command, environment and credential template. The demo
then prints the summary as a table and stops both servers. Everything
it writes goes below .demo/ in the repository.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.nomad_double import NomadDouble  # noqa: E402
from support.openbao import OpenBaoServer  # noqa: E402

DEMO_DIR = REPO / ".demo"
ALLOCATION_TIMEOUT_SECONDS = 300


def run_playbook(env: dict[str, str], extra_args: list[str]) -> None:
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "site.yml",
        "--inventory",
        "inventory/demo",
        *extra_args,
    ]
    print(f"$ {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=REPO, env=env, check=True)


def write_encrypted_password(password: str) -> tuple[Path, Path]:
    """Store the processor password the way production does: in an Ansible Vault file."""
    vault_password_file = DEMO_DIR / "ansible-vault-password"
    vault_password_file.write_text(secrets.token_urlsafe(24) + "\n")
    vault_password_file.chmod(0o600)
    secrets_file = DEMO_DIR / "secrets.yml"
    secrets_file.write_text(f"vault_batch_client_processor_password: {json.dumps(password)}\n")
    secrets_file.chmod(0o600)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(vault_password_file),
            str(secrets_file),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return secrets_file, vault_password_file


def print_summary(results_dir: Path) -> dict[str, Any]:
    summaries = sorted(results_dir.glob("*_summary.json"))
    if not summaries:
        raise SystemExit(f"no batch summary in {results_dir}")
    summary = json.loads(summaries[-1].read_text())
    jobs = summary["jobs"]
    width = max([len("job"), *(len(job["job"]) for job in jobs)])
    print()
    print(f"batch {summary['batch_id']}: {summary['status']}, exit status {summary['exit_code']}")
    print(f"{'job':<{width}}  {'status':<9}  reason")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 6}")
    for job in jobs:
        print(f"{job['job']:<{width}}  {job['status']:<9}  {job['reason'] or ''}")
    counts = summary["counts"]
    print()
    print(
        "total {total}: {succeeded} succeeded, {failed} failed, {skipped} skipped, "
        "{invalid} invalid, {cancelled} cancelled".format(**counts)
    )
    print(f"token revoked: {summary['token']['revoked']}")
    print(f"results: {results_dir}")
    return summary


def main() -> int:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(mode=0o700)
    password = secrets.token_urlsafe(24)
    secrets_file, vault_password_file = write_encrypted_password(password)

    vault = OpenBaoServer().start()
    nomad = NomadDouble(node_name="lil-pakalolo", data_dir=DEMO_DIR / "nomad").start()
    try:
        print(f"OpenBao dev server at {vault.addr}, Nomad API double at {nomad.addr}", flush=True)
        env = {
            **os.environ,
            "VAULT_ADDR": vault.addr,
            "VAULT_TOKEN": vault.root_token,
            "NOMAD_ADDR": nomad.addr,
            "DEMO_DIR": str(DEMO_DIR),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        }
        run_playbook(
            env,
            [
                "--extra-vars",
                f"@{secrets_file}",
                "--vault-password-file",
                str(vault_password_file),
                "--extra-vars",
                json.dumps(
                    {
                        "vault_batch_client_nomad_addr": nomad.addr,
                        "vault_batch_client_time_scale": 0.2,
                        "vault_batch_client_run_now": True,
                        "vault_batch_client_run_now_timeout": ALLOCATION_TIMEOUT_SECONDS,
                    }
                ),
            ],
        )
        summary = print_summary(DEMO_DIR / "vault-clients" / "results")
    finally:
        nomad.stop()
        vault.stop()
    # The demo succeeds when the batch ran to its end; failed and invalid
    # example jobs are part of the show.
    return 0 if summary["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
