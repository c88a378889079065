"""What the optimisation benchmarks share: one timing, interleaved rounds, ratios, and one way
to write their report.

Imported by ``scripts/benchmark_featurevis.py``, ``benchmark_inversion.py`` and
``benchmark_adversarial.py`` (run as ``python scripts/<name>.py``, so this folder is on the
import path).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Mapping, Sequence


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(contenders: Mapping[str, Callable[[], object]], rounds: int, label: str,
                steps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Runs every contender once per round, the order rotating every round (so none always
    runs first or after the same neighbour), printing each round's seconds per step.

    Returns:
      ``(walls, cpus)``: wall and process CPU seconds per contender, one per round.
    """
    names = list(contenders)
    walls: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = timed(contenders[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
        print(f"{label} round {r + 1}: " + ", ".join(
            f"{k} {walls[k][-1] / steps:.4f} s/step" for k in names), flush=True)
    return walls, cpus


def ratios(times: Mapping[str, list[float]], name: str, base: str) -> list[float]:
    """``name``'s time over ``base``'s, round by round."""
    return [a / b for a, b in zip(times[name], times[base])]


def ratio_cells(walls: Mapping[str, list[float]], cpus: Mapping[str, list[float]], name: str,
                base: str, bold: bool = True) -> str:
    """``"**1.234x** | 1.100 / 1.300 | 1.200x"``: the median wall-time ratio to ``base``, its
    least and greatest round, and the median CPU-time ratio (table cells)."""
    wall = ratios(walls, name, base)
    median = f"{statistics.median(wall):.3f}x"
    return (f"{f'**{median}**' if bold else median} | {min(wall):.3f} / {max(wall):.3f} | "
            f"{statistics.median(ratios(cpus, name, base)):.3f}x")


def environment() -> str:
    """``"TensorFlow 2.21.0, Keras 3.15.1, Python 3.11.7, CPU (2 cores)"`` for a header."""
    import keras
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    return (f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
            f"{platform.python_version()}, {device}")


def report(out: str | None, script: str, argv: Sequence[str] | None, template: str,
           header: str, table: str, notes: Sequence[str]) -> None:
    """Prints ``header``, ``table`` and ``notes``; with ``out``, also writes ``template``
    filled with them (notes as bullets) and the command that made it."""
    print(header)
    print(table)
    print("\n".join(notes))
    if not out:
        return
    command = " ".join(["python", f"scripts/{script}",
                        *(argv if argv is not None else sys.argv[1:])])
    with open(out, "w") as f:
        f.write(template.format(command=command, header=header, table=table,
                                notes="\n".join(f"- {line}" for line in notes)))
