"""Speed and memory of every tfvis method, as ratios to a floor measured in the same run.

Usage::

    python scripts/benchmark.py --quick            # minutes: small settings, checks the script
    python scripts/benchmark.py                    # the full measurement (long on a CPU)
    python scripts/benchmark.py --others           # also xplique, tf-keras-vis, tf-explain
                                                   # (install them with scripts/setup_bench.sh)

Workloads: (i) ``keras.applications.ResNet50(weights=None)``, 224x224, a batch of 8 images;
(ii) a small CNN (the demo's architecture), 64x64, a batch of 32 images. Every method in the
registry is timed per image. Its **floor** is the least work the method must do, timed with
the model's own compiled function in the same run:

* perturbation methods: (perturbed inputs per image) x (forward time per input of the
  compiled batched forward, at the explainer's batch size);
* pixel-space gradient methods: forward + backward to the input of the batch, times the
  number of samples (SmoothGrad) or steps (Integrated Gradients);
* CAM family: forward + backward to the explained layer only (CAM: the forward).

Parameters (every library gets the same): occlusion patch = side / 4, stride = patch / 2,
fill 0 (quick: side / 2); RISE N=500 masks (``--rise-masks``; quick 32), grid 7, p=0.5;
SmoothGrad n=50 (``--samples``; quick 4), noise 0.15; Integrated Gradients 50 steps (quick 4).
Perturbation methods run 32 (ResNet50) or 128 (small CNN) perturbed images per model call,
gradient methods the whole batch at once. Quick mode: 2 / 8 images, 2 rounds.

Timing on a shared machine swings several-fold within seconds, so each round runs every
contender once, in turn (round-robin), each back to back with its floor (the floor's own work,
as long as the contender's run; alternating which goes first); ratios are taken within the
pair and the tables quote medians over rounds. The first call (tracing included) is reported apart.
``--memory`` measures each contender's peak memory in a fresh process (allocator pools are
shared within a process, so in-process numbers would depend on the order of the contenders):
every process builds the model and runs one eager forward of the batch (the allocator keeps
that memory, for every library alike), then reads its baseline; the peak RSS above it while
building the explainer and during the first call (tracing included) and the next, sampled
every 2 ms (on a GPU: the peak of TensorFlow's allocator), is reported. ``--memory-only``
measures just that and writes it into an existing ``--out`` report (``--merge`` likewise
replaces only the rows of the contenders measured, e.g. after changing one method). ``--memory`` also
checks that RISE's peak memory with N=4000 masks stays within 1.3x of N=500 (one 64x64 image,
the same batch size, medians of 3 processes each); the script exits 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvis  # noqa: E402
from tfvis.explainers.cam import _CAMFamily  # noqa: E402
from tfvis.explainers.perturbation import PerturbationExplainer  # noqa: E402
from tfvis.surgery import run_graph  # noqa: E402

GPU = bool(tf.config.list_physical_devices("GPU"))


# -- measuring ------------------------------------------------------------------------------


def rss() -> int:
    """Resident memory of this process in bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def memory_now() -> int:
    """Bytes in use now: TensorFlow's GPU allocator when there is a GPU, else RSS."""
    return tf.config.experimental.get_memory_info("GPU:0")["current"] if GPU else rss()


class PeakMemory:
    """Context manager: peak memory in MiB above ``baseline`` (default: the level at entry)."""

    def __init__(self, baseline: int | None = None):
        self.baseline = baseline

    def __enter__(self):
        self.start = memory_now() if self.baseline is None else self.baseline
        if GPU:
            tf.config.experimental.reset_memory_stats("GPU:0")
        else:
            self.peak = rss()
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if GPU:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            self.running = False
            self.thread.join()
            peak = max(self.peak, rss())
        self.mib = max(0.0, (peak - self.start) / 2**20)  # RSS can fall below the baseline
        return False


def timed(fn: Callable[[], Any]) -> float:
    """Seconds of one call (results are forced to numpy by ``fn``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def force(result: Any) -> Any:
    """Waits for a result: numpy arrays of everything in it."""
    if hasattr(result, "maps"):
        return result.maps
    return [np.asarray(r) for r in tf.nest.flatten(result)]


# -- workloads and floors -------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    model: keras.Model
    images: np.ndarray
    batch: int  # perturbed images per model call (perturbation methods and their floor)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method


def workloads(args) -> list[Workload]:
    from tfvis.demo import build_model

    rng = np.random.default_rng(0)
    made = []
    for name in args.workloads:
        if name == "resnet50":
            model = keras.applications.ResNet50(weights=None)
            size, count, batch = 224, (2 if args.quick else 8), 32
        elif name == "cnn":
            model = build_model((64, 64, 3), seed=0)
            size, count, batch = 64, (8 if args.quick else 32), 128
        else:
            raise SystemExit(f"unknown workload {name!r}: choose resnet50, cnn")
        images = rng.random((count, size, size, 3)).astype("float32")
        patch = size // 2 if args.quick else size // 4
        options = {
            "occlusion": {"patch_size": patch, "stride": patch // 2, "fill": 0.0},
            "rise": {"num_masks": args.rise_masks or (32 if args.quick else 500),
                     "grid_size": 7, "keep_prob": 0.5, "seed": 0},
            "smoothgrad": {"num_samples": args.samples or (4 if args.quick else 50),
                           "noise": 0.15},
            "integrated_gradients": {"steps": args.samples or (4 if args.quick else 50)},
        }
        made.append(Workload(name, model, images, batch, options))
    return made


class Floors:
    """The model's own compiled computations that bound each method family from below."""

    def __init__(self, work: Workload):
        self.work = work
        model = work.model
        shape = work.images.shape
        self.x = tf.constant(work.images)
        self.perturbed = tf.constant(
            np.random.default_rng(1).random((work.batch, *shape[1:])).astype("float32"))
        classes = model.outputs[0].shape[-1]
        self.onehot = tf.one_hot(np.arange(shape[0]) % classes, classes)
        self._forward = tf.function(lambda t: model(t, training=False), autograph=False)
        self._to_input = tf.function(self._grad_input, autograph=False)
        self._to_layer: dict[str, Callable] = {}
        self.warm: set[str] = set()

    def _grad_input(self, t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            score = tf.reduce_sum(self.work.model(t, training=False) * self.onehot)
        return tape.gradient(score, t)

    def _grad_layer_fn(self, path: str):
        if path not in self._to_layer:
            def step(t):
                seen = {}
                with tf.GradientTape() as tape:
                    def hook(a):
                        tape.watch(a)
                        seen["a"] = a
                        return a
                    out = run_graph(self.work.model, t, hooks={path: hook})
                    score = tf.reduce_sum(out * self.onehot)
                return tape.gradient(score, seen["a"])
            self._to_layer[path] = tf.function(step, autograph=False)
        return self._to_layer[path]

    def kinds(self, explainer) -> tuple[str, float]:
        """(floor kind, multiplier) of an explainer."""
        n, height, width = self.work.images.shape[:3]
        if isinstance(explainer, PerturbationExplainer):
            return "forward_per_input", n * explainer.num_perturbations(height, width)
        if isinstance(explainer, _CAMFamily):
            if not explainer.uses_gradients:
                return "forward", 1
            return f"layer:{explainer.layer}", 1
        evaluations = next((getattr(explainer, a) for a in ("num_samples", "steps")
                            if isinstance(getattr(explainer, a, None), int)), 1)
        return "input", evaluations

    def measure(self, kind: str, multiplier: float) -> float:
        """Seconds of the floor work itself (``multiplier`` units of ``kind``), so that it runs
        as long as the contender it is compared with: a short burst after idling gets a larger
        CPU share on a busy machine than a long run, which would bias short floors low."""
        if kind == "forward_per_input":
            fn, arg = self._forward, self.perturbed
            calls = max(1, round(multiplier / self.work.batch))
            scale = multiplier / (calls * self.work.batch)
        else:
            fn = self._forward if kind == "forward" else self._to_input if kind == "input" \
                else self._grad_layer_fn(kind.split(":", 1)[1])
            arg, calls, scale = self.x, max(1, round(multiplier)), multiplier / max(1, round(
                multiplier))
        if kind not in self.warm:  # trace outside the measurement
            force(fn(arg))
            self.warm.add(kind)
        start = time.perf_counter()
        for _ in range(calls):
            force(fn(arg))
        return (time.perf_counter() - start) * scale


# -- contenders -----------------------------------------------------------------------------


@dataclass
class Contender:
    library: str
    method: str
    run: Callable[[], Any]
    floor: tuple[str, float]
    times: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    first: float = float("nan")
    memory: tuple | None = None  # peak MiB of the first and the next call (--memory)
    error: str = ""


def tfvis_contenders(work: Workload, floors: Floors, methods: list[str]) -> list[Contender]:
    made = []
    for name in methods:
        cls = tfvis.REGISTRY[name]
        batch = work.batch if issubclass(cls, PerturbationExplainer) else len(work.images)
        try:
            explainer = cls(work.model, verbose=0, batch_size=batch, **work.options.get(name, {}))
        except (TypeError, ValueError) as error:
            print(f"  skip tfvis {name}: {error}")
            continue
        made.append(Contender("tfvis", name, lambda e=explainer: force(e(work.images)),
                              floors.kinds(explainer)))
    return made


def contenders_for(work: Workload, floors: Floors, methods: list[str], others: bool,
                   libraries: set[str] | None = None):
    """tfvis's contenders for ``methods`` and, with ``others``, the other libraries' (only
    ``libraries`` when given, "tfvis" included)."""
    made = [] if libraries and "tfvis" not in libraries else tfvis_contenders(work, floors, methods)
    if others:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_others import other_contenders

        made += other_contenders(work, floors, Contender, force, methods, libraries)
    return made


def run_rounds(work: Workload, floors: Floors, contenders: list[Contender], rounds: int):
    for contender in contenders:  # first call: tracing included
        try:
            contender.first = timed(contender.run)
        except Exception as error:  # noqa: BLE001 - a failing contender is reported, not fatal
            contender.error = f"{type(error).__name__}: {str(error)[:200]}"
            print(f"  {contender.library} {contender.method} failed: {contender.error}")
    alive = [c for c in contenders if not c.error]
    for r in range(rounds):
        shift = r % max(len(alive), 1)
        for contender in alive[shift:] + alive[:shift]:
            # The contender and its floor back to back, in alternating order.
            first, second = (contender.run, None) if r % 2 else (None, contender.run)
            floor = 0.0
            for run in (first, second):
                if run is None:
                    floor = floors.measure(*contender.floor)
                else:
                    contender.times.append(timed(run))
            contender.ratios.append(contender.times[-1] / floor)
        print(f"  round {r + 1}/{rounds} done")


def measure_memory(work: Workload, contenders: list[Contender], argv: list[str]) -> None:
    """Peak memory of each contender, each in a fresh process (allocator pools are shared
    within a process, so in-process numbers would depend on the order of the contenders)."""
    for c in contenders:
        if c.error:
            continue
        command = [sys.executable, __file__, *argv, "--child", work.name, c.library, c.method]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            print(f"  memory of {c.library} {c.method} failed: {done.stderr.strip()[-300:]}")
            continue
        peaks = json.loads(lines[-1])
        c.memory = (peaks["first_mib"], peaks["next_mib"])


def two_calls(run: Callable[[], Any], baseline: int | None = None) -> dict[str, float]:
    """Peak MiB of a first call (tracing included) and of the next one (steady state), both
    above ``baseline`` (default: the memory in use before the first call)."""
    peaks = {}
    baseline = memory_now() if baseline is None else baseline
    for key in ("first_mib", "next_mib"):
        with PeakMemory(baseline) as memory:
            seconds = timed(run)
        peaks[key], peaks[key.replace("mib", "s")] = memory.mib, seconds
    return peaks


def child(args) -> None:
    """In a fresh process: the peak memory of one contender, printed as JSON.

    Every library starts from the same state: the model built and one eager forward of the
    batch done (the other libraries' adapters run such a forward to get labels, and the
    allocator keeps that memory), then the baseline is read, so the peak includes building
    the explainer (e.g. a model clone) and both calls, and nothing of other contenders.
    """
    name, library, method = args.child
    args.workloads = [name]
    work = workloads(args)[0]
    force(work.model(work.images, training=False))
    floors = Floors(work)
    baseline = memory_now()
    found = contenders_for(work, floors, [method], library != "tfvis", {library})
    print(json.dumps(two_calls(found[0].run, baseline)))


def table_rows(text: str, section: str) -> dict[tuple[str, str], int]:
    """Line index of each ``(method, library)`` row in the table of ``section`` (a workload's
    ``### name: ...`` part of a report)."""
    rows, inside = {}, False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("### "):
            inside = line.startswith(f"### {section}:")
        cells = [c.strip() for c in line.split("|")]
        if inside and len(cells) > 3 and cells[1] != "method" and not cells[1].startswith("---"):
            rows[(cells[1], cells[2])] = i
    return rows


def merge_rows(text: str, section: str, rows: dict[tuple[str, str], str]) -> str:
    """``text`` (an earlier report) with the rows of ``section`` whose (method, library) is in
    ``rows`` replaced by those lines."""
    lines = text.splitlines()
    for key, i in table_rows(text, section).items():
        lines[i] = rows.get(key, lines[i])
    return "\n".join(lines) + "\n"


def memory_rows(text: str, section: str, contenders: list[Contender]) -> dict:
    """``section``'s rows of ``text`` with the peak-memory cell replaced by measurements."""
    measured = {(c.method, c.library): c.memory for c in contenders if c.memory}
    lines, rows = text.splitlines(), {}
    for key, i in table_rows(text, section).items():
        if key in measured:
            cells = lines[i].split("|")
            cells[-2] = " %.0f / %.0f " % measured[key]
            rows[key] = "|".join(cells)
    return rows


# -- reporting ------------------------------------------------------------------------------


def table(work: Workload, contenders: list[Contender]) -> str:
    n = len(work.images)
    lines = [
        f"### {work.name}: {work.images.shape[1]}x{work.images.shape[2]}, batch {n}"
        f" ({'GPU' if GPU else 'CPU'})",
        "",
        "| method | library | ms / image (median) | x floor (median) | floor | first call s |"
        " peak MiB first / next |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for c in sorted(contenders, key=lambda c: (c.method, c.library != "tfvis", c.library)):
        if c.error:
            lines.append(f"| {c.method} | {c.library} | failed: {c.error[:80]} | | | | |")
            continue
        kind, multiplier = c.floor
        lines.append(
            f"| {c.method} | {c.library} | {1000 * statistics.median(c.times) / n:.1f} | "
            f"{statistics.median(c.ratios):.2f} | {kind} x {multiplier:g} | {c.first:.2f} | "
            f"{'-' if c.memory is None else '%.0f / %.0f' % c.memory} |"
        )
    params = "; ".join(f"{k}: {v}" for k, v in work.options.items())
    lines += ["", f"Parameters: {params}; perturbation batch {work.batch}.", ""]
    return "\n".join(lines)


def memory_child(num_masks: int) -> None:
    """Runs in a fresh process: RISE on one 64x64 image; prints its peak memory as JSON."""
    from tfvis.demo import build_model

    model = build_model((64, 64, 3), seed=0)
    x = np.random.default_rng(0).random((1, 64, 64, 3)).astype("float32")
    explainer = tfvis.RISE(model, num_masks=num_masks, seed=0, batch_size=64, verbose=0)
    print(json.dumps(two_calls(lambda: force(explainer(x)))))


def memory_check(repeats: int = 3) -> tuple[bool, str]:
    """RISE's peak memory for N=4000 masks vs N=500, first call and next call.

    RSS peaks vary by +-15% from process to process (allocator pools), so each N runs in
    ``repeats`` fresh processes, interleaved, and the medians are compared.
    """
    runs: dict[int, list[dict]] = {500: [], 4000: []}
    for _ in range(repeats):
        for n in runs:
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)],
                                 capture_output=True, text=True, check=True).stdout
            runs[n].append(json.loads(out.strip().splitlines()[-1]))
    lines = [f"### Memory: RISE, one 64x64 image, batch 64 (medians of {repeats} processes)", ""]
    passed = True
    for key, what in (("first", "first call (tracing included)"), ("next", "next call")):
        small, large = (statistics.median(r[f"{key}_mib"] for r in runs[n]) for n in runs)
        seconds = [statistics.median(r[f"{key}_s"] for r in runs[n]) for n in runs]
        ratio = large / max(small, 1e-6)
        passed &= ratio <= 1.3
        samples = {n: ", ".join(f"{r[f'{key}_mib']:.0f}" for r in runs[n]) for n in runs}
        lines.append(
            f"- {what}: N=500 peak {small:.1f} MiB ({seconds[0]:.1f} s; runs {samples[500]}), "
            f"N=4000 peak {large:.1f} MiB ({seconds[1]:.1f} s; runs {samples[4000]}): ratio "
            f"{ratio:.2f} (target <= 1.3) {'PASS' if ratio <= 1.3 else 'FAIL'}"
        )
    return passed, "\n".join(lines) + "\n"


def memory_settings(args) -> list[str]:
    """The command-line settings a memory child needs to rebuild the same workload."""
    settings = ["--quick"] if args.quick else []
    for flag, value in (("--rise-masks", args.rise_masks), ("--samples", args.samples)):
        settings += [flag, str(value)] if value else []
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings (minutes)")
    parser.add_argument("--workloads", nargs="+", default=["resnet50", "cnn"])
    parser.add_argument("--methods", nargs="+", default=None, help="registry names (all)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--rise-masks", type=int, default=None, help="RISE N (500; quick 32)")
    parser.add_argument("--samples", type=int, default=None,
                        help="SmoothGrad samples and IG steps (50; quick 4)")
    parser.add_argument("--others", action="store_true",
                        help="also time xplique, tf-keras-vis and tf-explain where installed")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory of every contender (fresh processes) and the RISE "
                             "N=4000 vs N=500 check")
    parser.add_argument("--memory-only", action="store_true",
                        help="measure peak memory only and write it into the tables of the "
                             "existing --out report (no timing)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the measured rows in the existing --out report")
    parser.add_argument("--out", type=Path, default=None, help="write the tables to this .md")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return 0
    if args.child is not None:
        child(args)
        return 0
    rounds = args.rounds or (2 if args.quick else 3)
    methods = args.methods or tfvis.methods()
    unknown = set(methods) - set(tfvis.methods())
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; available: {tfvis.methods()}")
    print(f"tfvis {tfvis.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{'GPU' if GPU else f'CPU ({os.cpu_count()} cores)'}; {rounds} rounds")
    if (args.memory_only or args.merge) and (args.out is None or not args.out.exists()):
        raise SystemExit("--memory-only and --merge update an existing report: give --out")
    if args.memory_only:
        text = args.out.read_text()
        for work in workloads(args):
            contenders = contenders_for(work, Floors(work), methods, args.others)
            measure_memory(work, contenders, memory_settings(args))
            text = merge_rows(text, work.name, memory_rows(text, work.name, contenders))
        args.out.write_text(text)
        print(text)
        return 0
    sections = []
    for work in workloads(args):
        print(f"workload {work.name} ...")
        floors = Floors(work)
        contenders = contenders_for(work, floors, methods, args.others)
        run_rounds(work, floors, contenders, rounds)
        if args.memory:
            measure_memory(work, contenders, memory_settings(args))
        sections.append(table(work, contenders))
        print(sections[-1])
        if args.merge:
            lines = sections[-1].splitlines()
            rows = {key: lines[i] for key, i in table_rows(sections[-1], work.name).items()}
            args.out.write_text(merge_rows(args.out.read_text(), work.name, rows))
    passed = True
    if args.memory and not args.merge:  # the RISE N=4000 check belongs to a full report
        passed, text = memory_check()
        sections.append(text)
        print(text)
    if args.out and not args.merge:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# tfvis benchmark\n\n" + "\n".join(sections))
        print(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
