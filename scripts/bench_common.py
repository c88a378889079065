"""What the optimisation benchmarks share: one timing, and one way to write their report.

Imported by ``scripts/benchmark_featurevis.py``, ``benchmark_inversion.py`` and
``benchmark_adversarial.py`` (run as ``python scripts/<name>.py``, so this folder is on the
import path).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Callable, Sequence


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


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
