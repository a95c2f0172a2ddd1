"""Scheduling: how well the processor keeps C workers busy, and in what order.

The jobs take 1, 2 or 3 simulated seconds by priority, in equal shares, and
BATCH_TIME_SCALE shrinks that to real sleeps (0.05 gives 50 to 150 ms). For
each concurrency C the job count is chosen so the ideal run lasts about
`--target-seconds`: ideal = sum(scaled work) / C. Efficiency is ideal over
the measured time, both for the whole process (interpreter start, login and
reads included) and for the span from the first job start to the last job
end, read from the result files.

The priority check reads every result file: no job of a lower priority may
have started_at before the latest started_at of a higher priority. started_at
has millisecond resolution, so equal times pass. The log file is checked the
same way, by the order of its "started" lines.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import (
    OUT_DIR,
    PRIORITIES,
    OpenBaoServer,
    check_returncode,
    median,
    progress,
    run_child,
    seed_batch_namespace,
    seed_jobs,
    write_results,
)
from overhead import processor_command

PRIORITY_SECONDS = {"high": 1.0, "medium": 2.0, "low": 3.0}
RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
STARTED_LINE = re.compile(r"job '(?P<job>[^']+)' started \(priority (?P<priority>\w+)\)")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def job_count(concurrency: int, time_scale: float, target_seconds: float) -> int:
    """Return a multiple of 3 jobs whose ideal run at `concurrency` lasts about `target_seconds`."""
    mean_seconds = sum(PRIORITY_SECONDS.values()) / len(PRIORITY_SECONDS) * time_scale
    jobs = math.ceil(target_seconds * concurrency / mean_seconds)
    return max(3, jobs + (-jobs) % 3)


def priority_violations(results: list[dict[str, Any]]) -> int:
    """Count jobs that started before the last start of a higher priority."""
    latest_start: dict[int, float] = {}
    for result in results:
        rank = RANK[result["priority"]]
        latest_start[rank] = max(latest_start.get(rank, 0.0), parse_time(result["started_at"]))
    violations = 0
    for result in results:
        rank = RANK[result["priority"]]
        started = parse_time(result["started_at"])
        higher = [latest_start[r] for r in latest_start if r < rank]
        if higher and started < max(higher):
            violations += 1
    return violations


def log_order_violations(log_text: str) -> tuple[int, int]:
    """Return (started lines, lines whose priority ranks above one logged before them)."""
    seen_rank = -1
    lines = violations = 0
    for match in STARTED_LINE.finditer(log_text):
        lines += 1
        rank = RANK[match.group("priority")]
        if rank < seen_rank:
            violations += 1
        seen_rank = max(seen_rank, rank)
    return lines, violations


def measure(
    server: OpenBaoServer,
    concurrency: int,
    time_scale: float,
    target_seconds: float,
    repeats: int,
    work_root: Path,
) -> dict[str, Any]:
    jobs = job_count(concurrency, time_scale, target_seconds)
    vault = seed_batch_namespace(server, f"sched-{concurrency}/batch")
    password_file = work_root / f"password-{concurrency}"
    password_file.write_text(vault.password + "\n")
    # Priorities in turn, so the listing order (by name) mixes them.
    configs = [(f"job-{i:05d}", {"priority": PRIORITIES[i % 3]}) for i in range(jobs)]
    seed_jobs(server, vault, configs)
    ideal = sum(PRIORITY_SECONDS[config["priority"]] for _, config in configs) * time_scale / concurrency

    runs: list[dict[str, Any]] = []
    for repeat in range(repeats):
        data_dir = Path(tempfile.mkdtemp(prefix=f"sched-{concurrency}-", dir=work_root))
        log_path = OUT_DIR / f"scheduling-{concurrency}.log"
        argv, env = processor_command(
            vault,
            password_file,
            data_dir,
            {"BATCH_TIME_SCALE": str(time_scale), "BATCH_CONCURRENCY": str(concurrency)},
        )
        try:
            run = run_child(argv, env, log_path)
            check_returncode("processor", run, lambda code: code == 0, log_path)
            results = [
                json.loads(path.read_text())
                for path in (data_dir / "results").glob("*.json")
                if not path.name.endswith("_summary.json")
            ]
            if len(results) != jobs:
                raise SystemExit(f"processor wrote {len(results)} results for {jobs} jobs")
            first_start = min(parse_time(r["started_at"]) for r in results)
            last_end = max(parse_time(r["finished_at"]) for r in results)
            log_text = (data_dir / "logs" / "batch-processing.log").read_text()
            started_lines, log_violations = log_order_violations(log_text)
            runs.append(
                {
                    "seconds": run.seconds,
                    "span_seconds": last_end - first_start,
                    "result_violations": priority_violations(results),
                    "log_started_lines": started_lines,
                    "log_violations": log_violations,
                }
            )
            progress(
                f"C={concurrency} run {repeat + 1}/{repeats}: {run.seconds:.2f} s "
                f"(ideal {ideal:.2f} s), span {last_end - first_start:.2f} s"
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)

    seconds = median(r["seconds"] for r in runs)
    span = median(r["span_seconds"] for r in runs)
    return {
        "concurrency": concurrency,
        "jobs": jobs,
        "time_scale": time_scale,
        "ideal_seconds": round(ideal, 3),
        "median_seconds": round(seconds, 3),
        "median_span_seconds": round(span, 3),
        "efficiency": round(ideal / seconds, 4),
        "span_efficiency": round(ideal / span, 4),
        "result_violations": sum(r["result_violations"] for r in runs),
        "log_started_lines": sum(r["log_started_lines"] for r in runs),
        "log_violations": sum(r["log_violations"] for r in runs),
        "seconds": [round(r["seconds"], 3) for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--target-seconds", type=float, default=8.0, help="ideal run time per concurrency")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="bench-scheduling-"))
    server = OpenBaoServer().start()
    try:
        levels = [
            measure(server, concurrency, args.time_scale, args.target_seconds, args.repeats, work_root)
            for concurrency in args.concurrency
        ]
    finally:
        server.stop()
        shutil.rmtree(work_root, ignore_errors=True)
    path = write_results("scheduling", {"repeats": args.repeats, "levels": levels})
    progress(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
