"""Render the results in bench/out/*.json as Markdown tables on stdout.

`make bench` writes them to bench/out/report.md; docs/benchmarks.md keeps a
copy of one run with the reading of the figures.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchlib import OUT_DIR


def load(name: str) -> dict[str, Any] | None:
    path = OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine_lines(machine: dict[str, str]) -> list[str]:
    return [
        f"Machine: {machine['nproc']} cores (`nproc`), {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}, Python {machine['python']}, "
        f"{machine['openbao']} (`bao server -dev`, in memory).",
        "",
    ]


def overhead_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "### Processor overhead (BATCH_TIME_SCALE=0)",
        "",
        *machine_lines(data["machine"]),
        f"Median of {data['repeats']} interleaved runs per variant; each time is a whole child "
        "process, interpreter start included. The floor reads with "
        f"{data['floor_concurrency']} threads.",
        "",
        "| N jobs | processor / floor (goal <= 1.3) | processor / floor with writes "
        "| naive / processor (goal >= 4) | processor s | floor s | floor with writes s | naive s "
        "| processor ms/job | floor ms/job | floor with writes ms/job | naive ms/job "
        "| processor peak RSS MB (goal <= 100) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in data["sizes"]:
        jobs = size["jobs"]
        variants = size["variants"]
        processor = variants.get("processor", {}).get("median_seconds")
        floor = variants.get("floor", {}).get("median_seconds")
        floor_writes = variants.get("floor_writes", {}).get("median_seconds")
        naive = variants.get("naive", {}).get("median_seconds")
        rss = variants.get("processor", {}).get("max_rss_mb")

        def cell(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
            return "-" if value is None else f"{value * scale:.{digits}f}"

        ratio_floor = f"{processor / floor:.2f}" if processor and floor else "-"
        ratio_writes = f"{processor / floor_writes:.2f}" if processor and floor_writes else "-"
        ratio_naive = f"{naive / processor:.2f}" if processor and naive else "-"
        per_job = 1000 / jobs
        lines.append(
            f"| {jobs:,} | {ratio_floor} | {ratio_writes} | {ratio_naive} | {cell(processor)} | {cell(floor)} "
            f"| {cell(floor_writes)} | {cell(naive)} | {cell(processor, per_job, 3)} | {cell(floor, per_job, 3)} "
            f"| {cell(floor_writes, per_job, 3)} | {cell(naive, per_job, 3)} | {cell(rss, 1.0, 0)} |"
        )
    if data.get("before"):
        lines += ["", "Before and after a processor change (median seconds):", ""]
        lines += ["| N jobs | before s | after s | after / before |", "| ---: | ---: | ---: | ---: |"]
        for size in data["sizes"]:
            variants = size["variants"]
            before = variants.get("before", {}).get("median_seconds")
            after = variants.get("processor", {}).get("median_seconds")
            if before and after:
                lines.append(f"| {size['jobs']:,} | {before:.2f} | {after:.2f} | {after / before:.2f} |")
    return [*lines, ""]


def scheduling_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "### Scheduling (simulated work)",
        "",
        *machine_lines(data["machine"]),
        "Ideal = sum of the scaled work / C. Process efficiency = ideal / whole process time "
        "(start, login and reading every configuration included); span efficiency = ideal / "
        "(last job end - first job start). Median of "
        f"{data['repeats']} runs.",
        "",
        "| C | N jobs | time scale | ideal s | process s | process efficiency | span s "
        "| span efficiency (goal >= 90 %) | priority order violations (result files, log) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in data["levels"]:
        lines.append(
            f"| {level['concurrency']} | {level['jobs']:,} | {level['time_scale']:g} | {level['ideal_seconds']:.2f} "
            f"| {level['median_seconds']:.2f} | {level['efficiency'] * 100:.1f} % "
            f"| {level['median_span_seconds']:.2f} | {level['span_efficiency'] * 100:.1f} % "
            f"| {level['result_violations']}, {level['log_violations']} of {level['log_started_lines']} lines |"
        )
    return [*lines, ""]


def seeding_section(data: dict[str, Any]) -> list[str]:
    runs = data["runs"]
    lines = [
        "### Seeding job entries into KV",
        "",
        *machine_lines(data["machine"]),
        f"N = {data['jobs']:,} entries. Median seconds of each whole `ansible-playbook` run.",
        "",
        *(
            [
                f"The baseline seeded {data['baseline_jobs']:,} entries; its time for {data['jobs']:,} is "
                f"estimated linearly from that run and one with no entries ({data['baseline_empty_seconds']:.1f} s).",
                "",
            ]
            if data.get("baseline_empty_seconds") is not None
            else []
        ),
        "| run | role s | baseline s | role / baseline (goal <= 0.05) | role changed tasks | baseline changed tasks |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in ("first", "rerun"):
        role = runs.get(f"role_{kind}")
        baseline = runs.get(f"baseline_{kind}")
        if not role:
            continue
        role_seconds = role["median_seconds"]
        baseline_seconds = baseline["median_seconds"] if baseline else None
        ratio = f"{role_seconds / baseline_seconds:.3f}" if baseline_seconds else "-"
        lines.append(
            f"| {kind} | {role_seconds:.1f} | {f'{baseline_seconds:.1f}' if baseline_seconds else '-'} | {ratio} "
            f"| {', '.join(map(str, role['changed']))} "
            f"| {', '.join(map(str, baseline['changed'])) if baseline else '-'} |"
        )
    return [*lines, ""]


def main() -> int:
    sections: list[str] = ["## Results of the last `make bench`", ""]
    for name, render in (
        ("overhead", overhead_section),
        ("scheduling", scheduling_section),
        ("seeding", seeding_section),
    ):
        data = load(name)
        if data is not None:
            sections += render(data)
    sys.stdout.write("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
