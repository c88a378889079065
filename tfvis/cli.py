"""The ``tfvis`` command (also ``python -m tfvis``).

Exit codes: 0 ok, 1 failure while explaining, 2 usage or input error, 3 refused for safety,
4 method not supported for this model. No traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import inspect
import io
import sys
from pathlib import Path
from typing import Sequence

EXAMPLES = """examples:
  tfvis demo                                   train a small CNN on built-in shapes, write ./tfvis-demo/
  tfvis layers model.keras                     the layer tree, with valid CAM layers marked *
  tfvis explain model.keras cat.png dog.jpg --method gradcam --out out/
  tfvis explain model.keras photos/ --method gradcampp --layer conv5_block3_out --target top5
  tfvis explain exported_savedmodel/ img.png --method saliency --trust-model --preprocess scale

Loading a model runs code stored in it: .keras files load in Keras's safe mode; legacy .h5
files, SavedModel folders and remote paths need --trust-model.
exit codes: 0 ok, 1 failed, 2 usage/input error, 3 refused for safety, 4 method unsupported
"""


class UsageError(Exception):
    """Bad arguments or inputs (exit code 2)."""


class UnsupportedMethod(Exception):
    """The method cannot explain this kind of model (exit code 4)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tfvis`` command."""
    from tfvis.explainers import REGISTRY

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="tfvis", description="Explain what a Keras / TensorFlow CNN looks at.",
        epilog=EXAMPLES, formatter_class=fmt)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a small CNN on built-in data, write a gallery of "
                          "every method", epilog=EXAMPLES, formatter_class=fmt)
    demo.add_argument("--out", default="tfvis-demo", help="output folder (default: tfvis-demo)")
    demo.add_argument("--methods", nargs="+", metavar="NAME", help="registry names (default: all)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    demo.add_argument("--train-images", type=int, default=1200,
                      help="training images (default: 1200)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")
    demo.add_argument("--quiet", action="store_true", help="print nothing")

    layers = sub.add_parser("layers", help="print a model's layer tree with paths and shapes",
                            epilog=EXAMPLES, formatter_class=fmt)
    layers.add_argument("model", help=".keras file (others need --trust-model)")
    layers.add_argument("--trust-model", action="store_true",
                        help="allow .h5, SavedModel folders, remote paths and Lambda layers")

    explain = sub.add_parser("explain", help="explain images with one method, write a gallery",
                             epilog=EXAMPLES, formatter_class=fmt)
    explain.add_argument("model", help=".keras file (others need --trust-model)")
    explain.add_argument("images", nargs="+", help="image files (PNG/JPEG/BMP/WebP) or folders")
    explain.add_argument("--method", default="gradcam", choices=list(REGISTRY),
                         help="registry name (default: gradcam)")
    explain.add_argument("--layer", help="layer name or outer/inner path (layer methods)")
    explain.add_argument("--target", default="top1",
                         help="top1 (predicted class), top5 (one panel per top-5 class), or a "
                              "class index (default: top1)")
    explain.add_argument("--out", default="tfvis-out", help="output folder (default: tfvis-out)")
    explain.add_argument("--preprocess", default="none",
                         help="none (0..255), scale (0..1) or a keras.applications name, e.g. "
                              "resnet50 (default: none)")
    explain.add_argument("--trust-model", action="store_true",
                         help="allow .h5, SavedModel folders, remote paths and Lambda layers")
    explain.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def _layers(args) -> int:
    from tfvis.io import load_model
    from tfvis.surgery import graph_of, layer_table

    loaded = load_model(args.model, trust=args.trust_model)
    model = loaded.model
    if graph_of(model) is None:
        raise UnsupportedMethod(f"{model.name} is a subclassed model: its layers are hidden")
    print(f"{model.name} ({loaded.kind}); * = valid CAM / Grad-CAM layer")
    for info in layer_table(model):
        depth = info.path.count("/")
        mark = "*" if info.is_spatial else " "
        print(f"{mark} {'  ' * depth}{info.path}  [{type(info.layer).__name__}]  {info.shape}")
    if loaded.kind == "savedmodel":
        print("(a SavedModel: only methods needing outputs or input gradients apply)")
    return 0


def _targets(spec: str, num_classes: int) -> list[tuple[str, object]]:
    if spec == "top1":
        return [("top1", None)]
    if spec == "top5":
        return [(f"top{k + 1}", k) for k in range(min(5, num_classes))]
    try:
        index = int(spec)
    except ValueError:
        raise UsageError(f"--target must be top1, top5 or a class index, not {spec!r}") from None
    if not 0 <= index < num_classes:
        raise UsageError(f"--target {index} is out of range: the model has {num_classes} classes")
    return [(f"class{index}", index)]


def _explain(args) -> int:
    import numpy as np

    from tfvis.explainers import REGISTRY
    from tfvis.gallery import Gallery, safe_name, write_atomic
    from tfvis.inputs import input_shape
    from tfvis.io import load_images, load_model
    from tfvis.plotting.images import overlay

    out = Path(args.out)
    if (out / "index.html").exists() and not args.overwrite:
        raise UsageError(f"{out / 'index.html'} exists; pass --overwrite to replace it")
    cls = REGISTRY[args.method]
    accepts_layer = "layer" in inspect.signature(cls.__init__).parameters
    if args.layer and not accepts_layer:
        raise UsageError(f"--layer does not apply to {cls.title}, which explains the input")
    loaded = load_model(args.model, trust=args.trust_model)
    if loaded.kind == "savedmodel" and getattr(cls, "needs_internals", False):
        usable = [n for n, c in REGISTRY.items() if not getattr(c, "needs_internals", False)]
        raise UnsupportedMethod(
            f"{cls.title} needs the model's inner layers, which a SavedModel hides. Methods "
            f"that work on a SavedModel: {', '.join(usable)}")
    model = loaded.model
    x, display, files, notes = load_images(args.images, input_shape(model), args.preprocess)
    for note in notes:
        print(note)
    options = {"verbose": 0}
    if args.layer:
        options["layer"] = args.layer
    explainer = cls(model, **options)
    probs = np.asarray(model.predict(x, verbose=0))
    if probs.ndim != 2:
        raise UnsupportedMethod(f"the model output has shape {probs.shape}; class targets "
                                "need a (N, classes) output")
    order = np.argsort(-probs, axis=1)
    panels = _targets(args.target, probs.shape[1])
    maps_dir = out / "maps"
    for folder in (out, maps_dir):
        if folder.is_symlink():
            raise UsageError(f"{folder} is a symbolic link; refusing to write through it")
    maps_dir.mkdir(parents=True, exist_ok=True)
    cells = [[] for _ in files]
    for label, rank in panels:
        targets = None if rank is None else (order[:, rank] if label.startswith("top") else rank)
        result = explainer.explain(x, targets=targets)
        for i, f in enumerate(files):
            cls_index = int(np.asarray(result.targets)[i])
            buffer = io.BytesIO()
            np.save(buffer, result.raw[i])
            name = f"{i:03d}_{safe_name(f.stem)}_{args.method}_{label}.npy"
            write_atomic(maps_dir / name, buffer.getvalue(), args.overwrite)
            cells[i].append((overlay(display[i], result.maps[i]),
                             f"class {cls_index} (score {probs[i, cls_index]:.3f})"))
    gallery = Gallery(f"tfvis: {cls.title} on {Path(args.model).name}",
                      ["input"] + [f"{cls.title} {label}" for label, _ in panels],
                      notes=notes + ([f"layer: {explainer.layer}"] if explainer.layer else []))
    for i, f in enumerate(files):
        gallery.add_row(f.name, [(display[i], f"predicted {int(order[i, 0])}")] + cells[i])
    index = gallery.write(out, overwrite=args.overwrite)
    print(f"wrote {index}")
    return 0


def _demo(args) -> int:
    from tfvis.demo import run_demo
    from tfvis.explainers import REGISTRY

    unknown = [m for m in args.methods or [] if m not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown methods {unknown}; available: {', '.join(REGISTRY)}")
    run_demo(args.out, methods=args.methods, epochs=args.epochs, n_train=args.train_images,
             seed=args.seed, verbose=0 if args.quiet else 1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code (never raises, unless ``--debug``)."""
    from tfvis.io import UnsafeModelError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    run = {"demo": _demo, "layers": _layers, "explain": _explain}[args.command]
    codes = ((UnsafeModelError, 3), (UnsupportedMethod, 4), (UsageError, 2),
             (FileNotFoundError, 2), (FileExistsError, 2), (ValueError, 2), (TypeError, 2),
             (Exception, 1))
    try:
        return run(args)
    except Exception as err:
        if args.debug:
            raise
        code = next(c for kind, c in codes if isinstance(err, kind))
        print(f"tfvis: error: {err}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
