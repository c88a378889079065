"""What the optimisation benchmarks share: one timing, and one way to write their report.

Imported by ``scripts/benchmark_featurevis.py``, ``benchmark_inversion.py`` and
``benchmark_adversarial.py`` (run as ``python scripts/<name>.py``, so this folder is on the
import path).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def write_report(out: str, script: str, argv: Sequence[str] | None, template: str,
                 header: str, table: str, notes: Sequence[str]) -> None:
    """Writes ``template`` filled with the command that made it, ``header``, ``table`` and
    ``notes`` (one bullet each) to ``out``."""
    command = " ".join(["python", f"scripts/{script}",
                        *(argv if argv is not None else sys.argv[1:])])
    with open(out, "w") as f:
        f.write(template.format(command=command, header=header, table=table,
                                notes="\n".join(f"- {line}" for line in notes)))
