"""``tfvis explain-dataset``: the command for `tfvis.explain_dataset`.

To wire it into `tfvis.cli`: call ``add_parser(sub)`` where the other sub-commands are added,
and map ``"explain-dataset"`` to `run_command` where commands are dispatched. It follows the
CLI's rules: everything TensorFlow-free is checked first, models load safely (``--trust-model``
for anything but .keras files), nothing is written outside ``--out``, and errors raise
`tfvis.cli.UsageError` (exit code 2) or `tfvis.io.UnsafeModelError` (3).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EPILOG = """examples:
  tfvis explain-dataset model.keras photos/ --methods gradcam,rise --out run/
  tfvis explain-dataset model.keras photos/ --methods gradcam --out run/ --resume
  tfvis explain-dataset model.keras photos/ --methods gradcam --out run/ --devices 4
  tfvis explain-dataset model.keras photos/ --methods rise --option rise.num_masks=500 \\
      --out run/ --ray auto --workers 8 --gpus-per-worker 1

writes run/explanations.zarr (maps/<method>, scores/<method>, targets, ids), manifest.json
and index.csv; a rerun with --resume finishes an interrupted run (complete shards are kept)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds the ``explain-dataset`` sub-command to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser("explain-dataset", help="explain a whole folder into a zarr store "
                       "(resumable; several devices or a Ray cluster)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=".keras file (others need --trust-model)")
    p.add_argument("data", help="a folder of images (read in sorted order)")
    p.add_argument("--methods", required=True,
                   help="comma-separated registry names or titles, e.g. gradcam,rise")
    p.add_argument("--out", required=True, help="the run's directory")
    p.add_argument("--option", action="append", metavar="METHOD.KEY=VALUE",
                   help="a method option, e.g. rise.num_masks=500 (repeatable)")
    p.add_argument("--targets", default="top1", help="top1 (default) or a class id")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=1024,
                   help="images per shard: the unit of resume (default 1024)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--preprocess", default="none",
                   help="none (0..255), scale (0..1) or a keras.applications module name")
    p.add_argument("--seed", type=int, default=0, help="seed of seeded methods (RISE...)")
    p.add_argument("--devices", type=int, default=1,
                   help="GPUs of this machine to split each batch over (MirroredStrategy)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on Ray: a cluster address ('auto', 'ray://host:10001') or 'local'")
    p.add_argument("--workers", type=int, default=2, help="Ray actors (with --ray)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="with --ray")
    p.add_argument("--resume", action="store_true",
                   help="finish the run already in --out (same arguments)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--trust-model", action="store_true",
                   help="allow SavedModels, .h5 and Lambda layers (runs code from the file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _method_options(methods: list[str], items: list[str] | None) -> dict[str, dict]:
    from tfvis.cli import UsageError, _option_pairs, parse_options, resolve_method

    classes = {}
    for name in methods:
        cls = resolve_method(name)
        classes[cls.name] = cls
    pairs: dict[str, list] = {name: [] for name in classes}
    for item in items or ():
        method, dot, rest = item.partition(".")
        if not dot or "=" not in rest or "=" in method:
            raise UsageError(f"--option takes METHOD.KEY=VALUE (e.g. rise.num_masks=500), "
                             f"not {item!r}")
        method = resolve_method(method).name
        if method not in pairs:
            raise UsageError(f"--option {item}: {method} is not in --methods")
        pairs[method] += _option_pairs([rest])
    return {name: parse_options(cls, pairs[name]) for name, cls in classes.items()}


def run_command(args: argparse.Namespace) -> int:
    """Runs ``tfvis explain-dataset``; returns the exit code (0)."""
    from tfvis.cli import UsageError, _import_tensorflow
    from tfvis.distributed.store import MANIFEST
    from tfvis.io import check_model_path

    out, data = Path(args.out), Path(args.data)
    if not data.is_dir():
        raise UsageError(f"{data} is not a folder of images")
    if out.is_symlink():
        raise UsageError(f"{out} is a symbolic link; refusing to write through it")
    if (out / MANIFEST).exists() and not (args.resume or args.overwrite):
        raise UsageError(f"{out} holds a run; pass --resume to finish it or --overwrite to "
                         "replace it")
    if args.resume and not (out / MANIFEST).exists():
        raise UsageError(f"--resume: {out} holds no run to finish")
    if args.devices < 1 or args.workers < 1:
        raise UsageError("--devices and --workers must be at least 1")
    if args.ray and args.devices > 1:
        raise UsageError("--devices splits batches on one machine; with --ray give "
                         "--gpus-per-worker instead")
    targets: Any = args.targets
    if targets != "top1":
        try:
            targets = int(targets)
        except ValueError:
            raise UsageError(f"--targets takes top1 or a class id, not {targets!r}") from None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(getattr(args, "debug", False))
    options = _method_options(methods, args.option)

    from tfvis.distributed import explain_dataset
    from tfvis.io import load_model

    model = load_model(args.model, trust=args.trust_model).model
    strategy = None
    if args.devices > 1:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < args.devices:
            raise UsageError(f"--devices {args.devices}: this machine has {len(gpus)} GPUs")
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus[:args.devices]])
    kwargs: dict[str, Any] = {}
    if args.ray:
        kwargs = {"engine": "ray", "num_workers": args.workers,
                  "num_gpus": args.gpus_per_worker,
                  "ray_address": None if args.ray == "local" else args.ray}
    try:
        run = explain_dataset(model, data, options, out, targets=targets,
                              batch_size=args.batch_size, shard_size=args.shard_size,
                              strategy=strategy, dtype=args.dtype, preprocess=args.preprocess,
                              seed=args.seed, overwrite=args.overwrite,
                              verbose=0 if args.quiet else 1, **kwargs)
    except (FileExistsError, ValueError) as err:
        raise UsageError(str(err)) from None
    skipped = run.manifest["skipped"]
    print(f"{len(run)} images, {len(run.methods)} methods -> {out / 'explanations.zarr'}"
          + (f"; {len(skipped)} unreadable files skipped (manifest.json)" if skipped else ""))
    if skipped:
        print(json.dumps(skipped[:5], indent=1))
    return 0
