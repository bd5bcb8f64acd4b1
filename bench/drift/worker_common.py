"""Measurement helpers shared by the benchmark workers (each runs in its own process).

A worker loads the two Parquet files, notes its resident memory, runs one computation a few
times, and prints one JSON object: timings (data loading excluded), memory (current RSS after
loading as the baseline, the process's peak RSS before and after computing) and verdicts.
Only the standard library here, so the Evidently venv can import it too.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB: ``VmHWM``, the high-water mark of its memory.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark into a child across exec
    (``signal->maxrss``), so a worker started by a large parent would report at least the
    parent's peak. ``VmHWM`` belongs to the process's own address space, which exec replaces.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    name: str,
    load: Callable[[], Any],
    compute: Callable[[Any], dict[str, bool]],
    repeat: int,
) -> None:
    """Load, then time ``compute`` ``repeat`` times; print the JSON result on stdout."""
    started = time.perf_counter()
    loaded = load()
    load_s = time.perf_counter() - started
    baseline = {"rss_after_load_mb": rss_mb(), "peak_after_load_mb": peak_rss_mb()}
    times: list[float] = []
    cpu: list[float] = []
    verdicts: dict[str, bool] = {}
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        verdicts = compute(loaded)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    result = {
        "name": name,
        "load_s": load_s,
        "compute_s": times,
        "compute_median_s": statistics.median(times),
        "compute_first_s": times[0],
        "cpu_median_s": statistics.median(cpu),
        **baseline,
        "peak_rss_mb": peak_rss_mb(),
        "drifted": sorted(feature for feature, drifted in verdicts.items() if drifted),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
