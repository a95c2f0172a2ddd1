"""Processor overhead: the processor against a floor and a naive baseline.

One OpenBao dev server on loopback contains one namespace per job count N.
For each N, these children run in rotating order, `--repeats` times each:

- processor: `python -m batch_processor run` with BATCH_TIME_SCALE=0, so the
  time is the processor's own: login, list, reads, one atomic result file per
  job, the summary and the revocation.
- floor: floor_client.py, which only logs in, LISTs and GETs the same keys
  with one keep-alive connection per thread.
- floor_writes: the same client, then one durable result file per job
  (temporary file, fsync, os.replace) with 16 threads: the floor for any
  program bound to the processor's durability contract.
- naive: naive_client.py, a sequential hvac loop that writes each result
  with json.dump.
- before (only with --before DIR): the processor from another tree, e.g. an
  older commit's files/ folder, to measure a change of the processor.

Each child is timed from start to exit, interpreter start included, and its
peak RSS is read with wait4. The medians go to bench/out/overhead.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    OUT_DIR,
    ROOT,
    ChildRun,
    OpenBaoServer,
    base_env,
    check_returncode,
    interleaved,
    job_config,
    job_name,
    median,
    progress,
    run_child,
    seed_batch_namespace,
    seed_jobs,
    write_results,
)

VARIANTS = ("processor", "floor", "floor_writes", "naive", "before")
FLOOR_CONCURRENCY = 8


def processor_command(
    vault: Any,
    password_file: Path,
    data_dir: Path,
    extra_env: dict[str, str],
    files_dir: Path = ROOT / "files",
) -> tuple[list[str], dict[str, str]]:
    env = base_env()
    env.update(vault.env())
    env.update(
        {
            "PYTHONPATH": str(files_dir),
            "VAULT_PASSWORD_FILE": str(password_file),
            "BATCH_DATA_DIR": str(data_dir),
            "BATCH_TIME_SCALE": "0",
        }
    )
    env.update(extra_env)
    return [sys.executable, "-m", "batch_processor", "run"], env


def client_command(
    script: str, vault: Any, password_file: Path, extra: list[str]
) -> tuple[list[str], dict[str, str]]:
    argv = [
        sys.executable,
        str(ROOT / "bench" / script),
        "--addr",
        vault.server.addr,
        "--namespace",
        vault.namespace,
        "--username",
        vault.username,
        "--password-file",
        str(password_file),
        *extra,
    ]
    return argv, base_env()


def run_variant(
    variant: str,
    vault: Any,
    password_file: Path,
    jobs: int,
    work_root: Path,
    extra_env: dict[str, str],
    before_dir: Path | None,
) -> ChildRun:
    data_dir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=work_root))
    log_path = OUT_DIR / f"overhead-{variant}-{jobs}.log"
    try:
        if variant == "processor":
            argv, env = processor_command(vault, password_file, data_dir, extra_env)
        elif variant == "before":
            assert before_dir is not None
            argv, env = processor_command(vault, password_file, data_dir, extra_env, before_dir)
        elif variant == "floor":
            argv, env = client_command(
                "floor_client.py", vault, password_file, ["--concurrency", str(FLOOR_CONCURRENCY)]
            )
        elif variant == "floor_writes":
            argv, env = client_command(
                "floor_client.py",
                vault,
                password_file,
                ["--concurrency", str(FLOOR_CONCURRENCY), "--results-dir", str(data_dir / "results")],
            )
        else:
            argv, env = client_command(
                "naive_client.py", vault, password_file, ["--results-dir", str(data_dir / "results")]
            )
        run = run_child(argv, env, log_path)
        check_returncode(variant, run, lambda code: code == 0, log_path)
        if variant != "floor":
            written = len(list((data_dir / "results").glob("*.json")))
            expected = jobs + 1 if variant in ("processor", "before") else jobs
            if written != expected:
                raise SystemExit(
                    f"{variant} wrote {written} result files for {jobs} jobs, expected {expected}"
                )
        return run
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000, 10000], help="job counts N")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant at each N")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS[:4]))
    parser.add_argument(
        "--before", type=Path, metavar="DIR", help="files/ folder of another processor version to compare"
    )
    parser.add_argument(
        "--processor-env", nargs="*", default=[], metavar="KEY=VALUE", help="extra processor environment"
    )
    parser.add_argument("--name", default="overhead", help="results file stem in bench/out")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.processor_env)
    if args.before is not None and "before" not in args.variants:
        args.variants.append("before")
    if "before" in args.variants and args.before is None:
        parser.error("the variant before needs --before DIR")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    server = OpenBaoServer().start()
    try:
        sizes: list[dict[str, Any]] = []
        for jobs in args.jobs:
            vault = seed_batch_namespace(server, f"bench-{jobs}/batch")
            password_file = work_root / f"password-{jobs}"
            password_file.write_text(vault.password + "\n")
            seconds = seed_jobs(server, vault, [(job_name(i), job_config(i)) for i in range(jobs)])
            progress(f"seeded {jobs} jobs in {seconds:.1f} s")

            runs: dict[str, list[ChildRun]] = {variant: [] for variant in args.variants}
            for repeat, variant in interleaved(args.repeats, args.variants):
                run = run_variant(variant, vault, password_file, jobs, work_root, extra_env, args.before)
                runs[variant].append(run)
                progress(
                    f"N={jobs} run {repeat + 1}/{args.repeats} {variant}: "
                    f"{run.seconds:.2f} s, peak RSS {run.max_rss_mb:.0f} MB"
                )
            sizes.append(
                {
                    "jobs": jobs,
                    "seed_seconds": round(seconds, 3),
                    "variants": {
                        variant: {
                            "median_seconds": round(median(r.seconds for r in variant_runs), 4),
                            "median_max_rss_mb": round(median(r.max_rss_mb for r in variant_runs), 1),
                            "max_rss_mb": round(max(r.max_rss_mb for r in variant_runs), 1),
                            "seconds": [round(r.seconds, 4) for r in variant_runs],
                        }
                        for variant, variant_runs in runs.items()
                    },
                }
            )
    finally:
        server.stop()
        shutil.rmtree(work_root, ignore_errors=True)

    path = write_results(
        args.name,
        {
            "repeats": args.repeats,
            "floor_concurrency": FLOOR_CONCURRENCY,
            "processor_env": extra_env,
            "before": str(args.before) if args.before else None,
            "sizes": sizes,
        },
    )
    progress(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
