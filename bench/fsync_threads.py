"""Throughput of atomic result writes by the number of threads writing at once.

Each write is what the processor does per result: a new temporary file, the
JSON written, fsync, then os.replace. Concurrent fsync calls on one file
system can share a journal commit, so more writers can mean more writes per
second. Not part of `make bench`; it explains the processor's time at
BATCH_TIME_SCALE=0, where writing the results is all the work there is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import interleaved, median


def write_atomic(folder: Path, name: str, payload: bytes) -> None:
    temp = folder / f".{name}.tmp"
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(descriptor, payload)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temp, folder / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder on the file system to test (default: temp)"
    )
    args = parser.parse_args(argv)

    payload = (json.dumps({"status": "succeeded", "padding": "x" * 400}, indent=2) + "\n").encode()
    seconds: dict[str, list[float]] = {str(threads): [] for threads in args.threads}
    for repeat, threads in interleaved(args.repeats, [str(t) for t in args.threads]):
        folder = Path(tempfile.mkdtemp(prefix="fsync-", dir=args.dir))
        try:
            started = time.perf_counter()
            names = [f"r{repeat}-{i}.json" for i in range(args.files)]
            with ThreadPoolExecutor(max_workers=int(threads)) as pool:
                for _ in pool.map(write_atomic, [folder] * args.files, names, [payload] * args.files):
                    pass
            seconds[threads].append(time.perf_counter() - started)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"{args.files} atomic writes with fsync, median of {args.repeats} runs")
    for threads, values in seconds.items():
        print(
            f"  {threads:>3} threads: {median(values):.3f} s, {median(values) / args.files * 1e3:.3f} ms per file"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
