"""The ``tfvis`` command (also ``python -m tfvis``).

Exit codes: 0 ok, 1 failure while explaining, 2 usage or input error, 3 refused for safety,
4 method not supported for this model. No traceback unless ``--debug``.

Start-up: this module imports neither TensorFlow nor Keras nor the explainers. Help, usage
errors, missing files, refused or corrupt models and existing outputs are answered before
TensorFlow is imported; only a command that needs a model (or ``tfvis explain --help``, which
lists every method's options) pays for it. For the command's own process, TensorFlow's C++
start-up log lines are hidden unless ``--debug`` (the library itself sets nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import io
import os
import re
import shlex
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

EXAMPLES = """examples:
  tfvis demo                                   train a small CNN on built-in shapes, write ./tfvis-demo/
  tfvis layers model.keras                     the layer tree, with valid CAM layers marked *
  tfvis explain model.keras cat.png dog.jpg --method gradcam --out out/
  tfvis explain model.keras photos/ --method Grad-CAM++ --layer conv5_block3_out --target top5
  tfvis explain model.keras cat.png --method rise --option num_masks=1000 --option grid_size=8,8
  tfvis explain exported_savedmodel/ img.png --method saliency --trust-model --preprocess scale
  tfvis evaluate model.keras photos/ --methods gradcam saliency random --metrics deletion insertion --out eval/
  tfvis inspect model.keras --data photos/ --out inspect/
  tfvis visualize model.keras --layer conv3b --channels 0-15 --out filters/
  tfvis invert model.keras cat.png --layer conv1a --layer conv3b --out inv/
  tfvis style vgg16.keras content.jpg style.jpg --preprocess vgg16 --out styled/
  tfvis attack model.keras photos/ --eps 8/255 --explain gradcam --out attack/
  tfvis explain-dataset model.keras photos/ --methods gradcam,rise --out run/   (--resume after a kill)
  tfvis neighbours model.keras --layer gap --data photos/ --query cat.png --k 5 --out nn/

Loading a model runs code stored in it: .keras files load in Keras's safe mode; legacy .h5
files, SavedModel folders, TFSMLayers and remote paths need --trust-model.
`tfvis explain --help` lists every method with its options and their defaults.
exit codes: 0 ok, 1 failed, 2 usage/input error, 3 refused for safety, 4 method unsupported
"""

#: Constructor arguments the command sets itself: ``--layer`` and a quiet run.
_SET_BY_COMMAND = ("layer", "verbose")
#: How many close layer names a typo lists.
_CLOSE_LAYERS = 5
#: The metrics `tfvis evaluate` takes: `tfvis.metrics.evaluate.METRICS`, spelled out here so
#: that help and usage errors need no TensorFlow (a test checks they agree).
EVALUATE_METRICS = ("deletion", "insertion", "pointing_game", "pointing_energy", "average_drop",
                    "increase_in_confidence", "mu_fidelity", "localization_error")
#: Metrics that need object masks (``--masks``).
_NEEDS_MASKS = ("pointing_game", "pointing_energy", "localization_error")
#: Rows of `tfvis evaluate` that are baselines, not registered methods.
_BASELINES = {"random": "random", "centre": "centre", "center": "centre"}
#: The files `tfvis evaluate` writes inside ``--out``.
EVALUATE_FILES = ("table.md", "table.csv", "curves.png")
#: The files `tfvis neighbours` writes inside ``--out``.
NEIGHBOURS_FILES = ("neighbours.png", "neighbours.csv")


class UsageError(Exception):
    """Bad arguments or inputs (exit code 2)."""


class UnsupportedMethod(Exception):
    """The method cannot explain this kind of model (exit code 4)."""


class _Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose help can end with text computed only when shown.

    Args:
      more_help: called when help is formatted (never while parsing); its text is appended.
    """

    def __init__(self, *args: Any, more_help: Callable[[], str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.more_help = more_help

    def format_help(self) -> str:
        text = super().format_help()
        return text + self.more_help() if self.more_help is not None else text


# -- methods: names, options -----------------------------------------------------------------


def resolve_method(name: str) -> type:
    """The registered explainer class for a registry name or a title, spelled any way
    `tfvis.get_explainer` accepts (``"gradcampp"``, ``"Grad-CAM++"``).

    Raises:
      UsageError: unknown name, with close matches and the available names.
    """
    from tfvis.explainers import explainer_class

    try:
        return explainer_class(name)
    except ValueError as err:
        raise UsageError(f"{err} (`tfvis explain --help` lists them with their options)") from None


def method_options(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor options of an explainer class that ``--option`` can set.

    Read from the signatures along the class's bases (a constructor that takes ``**kwargs``
    passes them on to its base), without the model argument and what the command sets
    itself (``layer``, which is ``--layer``, and ``verbose``).

    Returns:
      ``{name: inspect.Parameter}`` in signature order, most specific class first.
    """
    options: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is object:
            break
        init = vars(klass).get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        for p in params[1:]:  # without the model
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                options.setdefault(p.name, p)
        if params and params[0].name == "explainer_or_model":
            # SmoothGrad given a model builds a Saliency explainer from its other options.
            from tfvis.explainers import REGISTRY

            for name, p in method_options(REGISTRY["saliency"]).items():
                options.setdefault(name, p)
            break
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return {k: p for k, p in options.items() if k not in _SET_BY_COMMAND}


def _describe_options(options: dict[str, inspect.Parameter]) -> str:
    return ", ".join(f"{name}={'<required>' if p.default is p.empty else repr(p.default)}"
                     for name, p in options.items()) or "(none)"


def methods_help(debug: bool = False) -> str:
    """Help text listing every registered method with its options and their defaults.

    Imports the explainers (so TensorFlow, quietly unless ``debug``).
    """
    _import_tensorflow(debug)
    from tfvis.explainers import REGISTRY

    lines = ["", "methods (--method takes the name or the title; --option KEY=VALUE sets an "
             "option, repeatable):"]
    for name, cls in REGISTRY.items():
        lines.append(f"  {name:<26}{cls.title}")
        lines += textwrap.wrap(_describe_options(method_options(cls)), width=92,
                               initial_indent=" " * 6, subsequent_indent=" " * 6)
    lines.append("option values: 3, 0.5, true, false, none, a string, or a tuple such as 8,8")
    return "\n".join(lines) + "\n"


def _scalar(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_value(text: str) -> Any:
    """An ``--option`` value: int, float, bool (``true``/``false``), None (``none``), a
    tuple of those (``8,8``; ``8,`` is a 1-tuple) or else the string itself."""
    if "," in text:
        return tuple(_scalar(part) for part in text.split(",") if part.strip())
    return _scalar(text)


def _option_pairs(items: Sequence[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UsageError(f"--option takes KEY=VALUE (e.g. num_masks=1000), not {item!r}")
        pairs.append((key, value))
    return pairs


def parse_options(cls: type, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Checks ``--option`` names against the method's options and parses their values.

    Raises:
      UsageError: an option the method does not have (its options are listed), or ``layer``.
    """
    allowed = method_options(cls)
    options = {}
    for key, value in pairs:
        if key == "layer":
            raise UsageError("choose the layer with --layer, not --option layer=...")
        if key not in allowed:
            raise UsageError(f"{cls.title} has no option {key!r}. Its options (defaults): "
                             f"{_describe_options(allowed)}")
        options[key] = parse_value(value)
    return options


# -- TensorFlow start-up ---------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_tensorflow_logs(debug: bool) -> Iterator[None]:
    """Hides TensorFlow's C++ log lines (``TF_CPP_MIN_LOG_LEVEL=3``) while the command runs,
    unless ``debug`` or the caller chose a level; the environment is restored afterwards."""
    if debug or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        yield
    finally:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def _import_tensorflow(debug: bool) -> None:
    """Imports TensorFlow. Unless ``debug``, what its C++ side writes to stderr while
    importing (start-up lines that ignore ``TF_CPP_MIN_LOG_LEVEL``) is held back, and shown
    only if the import fails."""
    if debug or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to redirect
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            import tensorflow  # noqa: F401
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode("utf-8", "replace"))


# -- the parser ------------------------------------------------------------------------------


def build_parser(debug: bool = False) -> argparse.ArgumentParser:
    """The argument parser of the ``tfvis`` command (imports nothing heavy).

    Args:
      debug: show TensorFlow's start-up lines when ``tfvis explain --help`` imports it.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="tfvis", description="Explain what a Keras / TensorFlow CNN looks at.",
        epilog=EXAMPLES, formatter_class=fmt)
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help="train a small CNN on built-in data, write a gallery of "
                          "every method", epilog=EXAMPLES, formatter_class=fmt)
    demo.add_argument("--out", default="tfvis-demo", help="output folder (default: tfvis-demo)")
    demo.add_argument("--methods", nargs="+", metavar="NAME",
                      help="method names or titles (default: all)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    demo.add_argument("--train-images", type=int, default=1200,
                      help="training images (default: 1200)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")
    demo.add_argument("--overwrite", action="store_true",
                      help="write into a folder that is not empty (replacing an earlier gallery)")
    demo.add_argument("--quiet", action="store_true", help="print nothing")

    layers = sub.add_parser("layers", help="print a model's layer tree with paths and shapes",
                            epilog=EXAMPLES, formatter_class=fmt)
    layers.add_argument("model", help=".keras file (others need --trust-model)")
    layers.add_argument("--trust-model", action="store_true",
                        help="allow .h5, SavedModel folders, remote paths, Lambda layers and "
                             "TFSMLayers (for this load only)")

    explain = sub.add_parser("explain", help="explain images with one method, write a gallery",
                             epilog=EXAMPLES, formatter_class=fmt,
                             more_help=lambda: methods_help(debug))
    explain.add_argument("model", help=".keras file (others need --trust-model)")
    explain.add_argument("images", nargs="+", help="image files (PNG/JPEG/BMP/WebP) or folders")
    explain.add_argument("--method", default="gradcam",
                         help="registry name or title, e.g. gradcampp or Grad-CAM++ (default: "
                              "gradcam; the list is below)")
    explain.add_argument("--option", action="append", metavar="KEY=VALUE",
                         help="a constructor option of the method, e.g. num_masks=1000 or "
                              "grid_size=8,8; repeatable (options are listed below)")
    explain.add_argument("--layer", help="layer name, outer/inner path or index (layer methods)")
    explain.add_argument("--target", default="top1",
                         help="top1 (predicted class), top5 (one panel per top-5 class), or a "
                              "class index (default: top1)")
    explain.add_argument("--out", default="tfvis-out", help="output folder (default: tfvis-out)")
    explain.add_argument("--preprocess", default="none",
                         help="none (0..255), scale (0..1) or a keras.applications name, e.g. "
                              "resnet50 (default: none)")
    explain.add_argument("--trust-model", action="store_true",
                         help="allow .h5, SavedModel folders, remote paths, Lambda layers and "
                              "TFSMLayers (for this load only)")
    explain.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    vis = sub.add_parser("visualize", help="feature visualisation: one image per channel of a "
                         "layer (a filter grid)", epilog=EXAMPLES, formatter_class=fmt)
    vis.add_argument("model", help=".keras file (others need --trust-model)")
    vis.add_argument("--layer", required=True, help="layer name or path")
    vis.add_argument("--channels", default=None,
                     help="channels, e.g. 0-15 or 0,3,7 (default: all)")
    vis.add_argument("--steps", type=int, default=256, help="optimisation steps (default 256)")
    vis.add_argument("--learning-rate", type=float, default=0.05, help="Adam's (default 0.05)")
    vis.add_argument("--param", choices=("fourier", "pixel"), default="fourier",
                     help="image parameterisation (default fourier)")
    vis.add_argument("--seed", type=int, default=0, help="channel j uses seed + j (default 0)")
    vis.add_argument("--out", required=True, help="output folder")
    vis.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    vis.add_argument("--trust-model", action="store_true",
                     help="allow .h5, SavedModel folders, remote paths (for this load only)")
    from tfvis.distributed.command import add_parser as add_explain_dataset
    from tfvis.featurevis.command import add_parsers as add_representation_commands

    add_representation_commands(sub)
    add_explain_dataset(sub)
    insp = sub.add_parser("inspect", help="kernels, feature maps, layer statistics and top "
                          "dataset patches of a model, as a gallery page", epilog=EXAMPLES,
                          formatter_class=fmt)
    insp.add_argument("model", help=".keras file (others need --trust-model)")
    insp.add_argument("--data", nargs="+", default=None,
                      help="image files or folders (without: kernels only)")
    insp.add_argument("--layers", nargs="+", default=None,
                      help="layer paths (default: first, middle and last Conv2D)")
    insp.add_argument("--out", required=True, help="output folder")
    insp.add_argument("--channels", type=int, default=8, help="channels shown per layer")
    insp.add_argument("--k", type=int, default=9, help="top patches per channel")
    insp.add_argument("--preprocess", default="none", help="as for explain")
    insp.add_argument("--overwrite", action="store_true")
    insp.add_argument("--trust-model", action="store_true",
                      help="allow .h5, SavedModel folders, remote paths (for this load only)")

    nbrs = sub.add_parser("neighbours", help="nearest neighbours of query images in a layer's "
                          "feature space, as a figure and a CSV", epilog=EXAMPLES,
                          formatter_class=fmt)
    nbrs.add_argument("model", help=".keras file (others need --trust-model)")
    nbrs.add_argument("--layer", required=True,
                      help="feature layer: name, outer/inner path or index (spatial layers are "
                           "average-pooled)")
    nbrs.add_argument("--data", nargs="+", required=True,
                      help="the searched images: files or folders")
    nbrs.add_argument("--query", nargs="+", required=True, help="query images: files or folders")
    nbrs.add_argument("--k", type=int, default=5, help="neighbours per query (default: 5)")
    nbrs.add_argument("--metric", choices=("cosine", "l2"), default="cosine",
                      help="cosine (1 - cos) or l2 (Euclidean) distance (default: cosine)")
    nbrs.add_argument("--backend", choices=("exact", "faiss"), default="exact",
                      help="exact search (default) or faiss (pip install tfvis[faiss])")
    nbrs.add_argument("--faiss-index", default=None,
                      help="a faiss.index_factory string with --backend faiss, e.g. "
                           "IVF1024,Flat (default Flat: exact)")
    nbrs.add_argument("--out", required=True,
                      help=f"output folder for {' and '.join(NEIGHBOURS_FILES)}")
    nbrs.add_argument("--preprocess", default="none", help="as for explain")
    nbrs.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    nbrs.add_argument("--trust-model", action="store_true",
                      help="allow .h5, SavedModel folders, remote paths (for this load only)")

    evaluate = sub.add_parser(
        "evaluate", help="score methods with faithfulness metrics, write a table and curves",
        epilog=EVALUATE_HELP + "\n" + EXAMPLES, formatter_class=fmt)
    evaluate.add_argument("model", help=".keras file (others need --trust-model)")
    evaluate.add_argument("images", nargs="+", help="image files (PNG/JPEG/BMP/WebP) or folders")
    evaluate.add_argument("--methods", nargs="+", metavar="NAME",
                          default=["gradcam", "random", "centre"],
                          help="method names or titles, 'all' (every method), and the baselines "
                               "'random' and 'centre' (default: gradcam random centre)")
    evaluate.add_argument("--metrics", nargs="+", metavar="NAME", default=["all"],
                          help=f"{', '.join(EVALUATE_METRICS)} or all (default: all; those "
                               "needing objects run only with --masks)")
    evaluate.add_argument("--out", default="tfvis-eval",
                          help="output folder for table.md, table.csv, curves.png "
                               "(default: tfvis-eval)")
    evaluate.add_argument("--masks", metavar="DIR",
                          help="object masks: for each image, a file with the same name stem in "
                               "DIR; pixels brighter than 127 are the object")
    evaluate.add_argument("--target", default="top1",
                          help="top1 (predicted class) or a class index (default: top1)")
    evaluate.add_argument("--option", action="append", metavar="[NAME.]KEY=VALUE",
                          help="an option of a method or a metric: gradcam.layer=conv5, "
                               "deletion.steps=32, or KEY=VALUE for every method that has it; "
                               "repeatable")
    evaluate.add_argument("--preprocess", default="none",
                          help="none (0..255), scale (0..1) or a keras.applications name "
                               "(default: none)")
    evaluate.add_argument("--batch-size", type=int, default=None,
                          help="perturbed images per model call of the metrics (default: 64)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the random baseline and of MuFidelity (default: 0)")
    evaluate.add_argument("--trust-model", action="store_true",
                          help="allow .h5, SavedModel folders, remote paths, Lambda layers and "
                               "TFSMLayers (for this load only)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


EVALUATE_HELP = f"""metrics: {', '.join(EVALUATE_METRICS)}
  deletion, average_drop and localization_error: lower is better; the others: higher.
  pointing_game, pointing_energy and localization_error need --masks.
baselines: random (a seeded uniform map), centre (a centred Gaussian prior).
writes: {', '.join(EVALUATE_FILES)} (curves.png when deletion or insertion ran).
"""


# -- commands --------------------------------------------------------------------------------


def _load(args):
    """Checks the model path (no TensorFlow needed), then imports TensorFlow and loads it."""
    from tfvis.io import check_model_path, load_model

    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(args.debug)
    return load_model(args.model, trust=args.trust_model)


def _layers(args) -> int:
    loaded = _load(args)
    from tfvis.io import contains_tfsm_layer
    from tfvis.surgery import graph_of, layer_table

    model = loaded.model
    if graph_of(model) is None:
        raise UnsupportedMethod(f"{model.name} is a subclassed model: its layers are hidden")
    print(f"{model.name} ({loaded.kind}); * = valid CAM / Grad-CAM layer")
    for info in layer_table(model):
        depth = info.path.count("/")
        mark = "*" if info.is_spatial else " "
        print(f"{mark} {'  ' * depth}{info.path}  [{type(info.layer).__name__}]  {info.shape}")
    if loaded.kind == "savedmodel" or contains_tfsm_layer(model):
        print("(a SavedModel hides its layers: only methods needing outputs or input gradients "
              "apply to it)")
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


def _closest(word: str, names: Sequence[str], n: int = _CLOSE_LAYERS) -> list[str]:
    """The ``n`` names most similar to ``word``; ties keep the order of ``names``."""
    ratio = {name: difflib.SequenceMatcher(None, word, name).ratio() for name in names}
    return sorted(names, key=lambda name: -ratio[name])[:n]


def _list_hint(model_path: str) -> str:
    return f"`tfvis layers {shlex.quote(model_path)}` lists all layers"


def _layer_arg(model, layer: str, model_path: str) -> str | int:
    """``--layer`` as resolve_layer takes it; a name not in the model is a short usage error
    naming the closest layers (resolve_layer's own message lists a whole table)."""
    from tfvis.surgery import layer_table

    if re.fullmatch(r"-?\d+", layer.strip()):
        return int(layer)
    paths = [info.path for info in layer_table(model)]
    names = list(dict.fromkeys(paths + [p.rsplit("/", 1)[-1] for p in paths]))
    if layer in names:
        return layer
    close = _closest(layer, names)
    listed = f" Closest: {', '.join(close)}." if close else ""
    raise UsageError(f"no layer {layer!r} in model {model.name!r}.{listed} "
                     f"{_list_hint(model_path)}.")


def _short_error(err: Exception, model_path: str) -> str:
    """An explainer constructor's message with at most five of the layers it lists (the
    deepest, nearest the output), and a pointer to ``tfvis layers`` for the rest."""
    head, *rest = str(err).splitlines()
    listed = [line.strip() for line in rest if line.strip() and not line.strip().startswith("...")]
    if len(listed) <= _CLOSE_LAYERS:
        return "\n".join([head] + [f"  {line}" for line in listed])
    return "\n".join([head] + [f"  {line}" for line in listed[-_CLOSE_LAYERS:]]
                     + [f"  ({_list_hint(model_path)})"])


_SAVED_MODEL_NOTE = ("note: the outputs are explained as they are (probabilities, not logits): "
                     "a final softmax or sigmoid inside a SavedModel (TFSMLayer) cannot be "
                     "bypassed")


def _print_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """Python warnings of a run as one ``tfvis: warning:`` line each (first line, no
    duplicates); the library's SavedModel warning is the note printed instead."""
    seen = set()
    for w in caught:
        line = str(w.message).strip().split("\n")[0]
        if line and line not in seen and "cannot be bypassed" not in line:
            seen.add(line)
            print(f"tfvis: warning: {line}", file=sys.stderr)


def _check_supported(cls, model, kind: str, layer: str | None) -> bool:
    """Raises UnsupportedMethod when ``cls`` cannot explain ``model`` at all.

    Returns:
      Whether the model holds a SavedModel (a TFSMLayer), whose insides are hidden.
    """
    from tfvis.explainers import REGISTRY
    from tfvis.io import contains_tfsm_layer
    from tfvis.surgery import graph_of, layer_table

    hidden = kind == "savedmodel" or contains_tfsm_layer(model)
    if not getattr(cls, "needs_internals", False):
        return hidden
    usable = ", ".join(n for n, c in REGISTRY.items() if not getattr(c, "needs_internals", False))
    if graph_of(model) is None:
        raise UnsupportedMethod(
            f"{cls.title} needs the model's inner layers, and {model.name!r} is a subclassed "
            f"model whose layers are hidden. Methods that work on it: {usable}")
    takes_layer = "layer" in inspect.signature(cls.__init__).parameters
    gated = getattr(cls, "rule", None) is not None  # rewires the ReLUs' backward pass
    if hidden and (gated or not takes_layer):
        raise UnsupportedMethod(
            f"{cls.title} needs the model's inner layers, which a SavedModel (TFSMLayer) hides. "
            f"Methods that work on this model: {usable}")
    if takes_layer and layer is None and not any(i.is_spatial for i in layer_table(model)):
        where = " outside its SavedModel (TFSMLayer), whose layers are hidden" if hidden else ""
        raise UnsupportedMethod(
            f"{cls.title} explains a feature map, and model {model.name!r} has no layer with a "
            f"rank-4 (N, H, W, C) output with H and W > 1{where}. Methods that need only "
            f"outputs or input gradients: {usable}")
    return hidden


def _output_folder(path: str, files: Sequence[str], overwrite: bool,
                   folders: Sequence[str] = ()) -> Path:
    """``--out`` checked before anything runs: not a symbolic link (nor its ``folders``), not
    a file, and none of ``files`` in it (or a link named like one) unless ``overwrite``."""
    out = Path(path)
    for folder in (out, *(out / name for name in folders)):
        if folder.is_symlink():
            raise UsageError(f"{folder} is a symbolic link; refusing to write through it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    for name in files:
        if (out / name).is_symlink():
            raise UsageError(f"{out / name} is a symbolic link; refusing to write through it")
    existing = [name for name in files if (out / name).exists()]
    if existing and not overwrite:
        raise UsageError(f"{out / existing[0]} exists; pass --overwrite to replace it")
    return out


def _explain(args) -> int:
    from tfvis.io import check_model_path, image_files

    # Everything that can be checked without TensorFlow comes first.
    out = _output_folder(args.out, ["index.html"], args.overwrite, folders=("maps", "top5"))
    files = image_files(args.images)
    pairs = _option_pairs(args.option)
    check_model_path(args.model, trust=args.trust_model)

    _import_tensorflow(args.debug)
    import numpy as np

    from tfvis.gallery import Gallery, safe_name, write_atomic
    from tfvis.inputs import input_shape
    from tfvis.io import load_images, load_model
    from tfvis.plotting.images import overlay

    cls = resolve_method(args.method)
    options = parse_options(cls, pairs)
    takes_layer = "layer" in inspect.signature(cls.__init__).parameters
    if args.layer and not takes_layer:
        raise UsageError(f"--layer does not apply to {cls.title}, which explains the input")
    loaded = load_model(args.model, trust=args.trust_model)
    model = loaded.model
    hidden = _check_supported(cls, model, loaded.kind, args.layer)
    if args.layer:
        options["layer"] = _layer_arg(model, args.layer, args.model)
    x, display, _, notes = load_images(files, input_shape(model), args.preprocess)
    for note in notes:
        print(note)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            explainer = cls(model, verbose=0, **options)
        except (ValueError, TypeError) as err:
            message = _short_error(err, args.model)
            if options:  # the user's layer or options
                raise UsageError(message) from None
            raise UnsupportedMethod(message) from None  # the method's defaults on this model
        probs = np.asarray(model.predict(x, verbose=0))
        if probs.ndim != 2:
            raise UnsupportedMethod(f"the model output has shape {probs.shape}; class targets "
                                    "need a (N, classes) output")
        if hidden and explainer.logits and 0 <= probs.min() and probs.max() <= 1:
            notes.append(_SAVED_MODEL_NOTE)
            print(_SAVED_MODEL_NOTE)
        order = np.argsort(-probs, axis=1)
        panels = _targets(args.target, probs.shape[1])
        maps_dir = out / "maps"
        maps_dir.mkdir(parents=True, exist_ok=True)
        cells = [[] for _ in files]
        top5 = [([], []) for _ in files]  # per image: (classes, maps) for the top-5 figure
        for label, rank in panels:
            targets = None if rank is None else (order[:, rank] if label.startswith("top")
                                                 else rank)
            result = explainer.explain(x, targets=targets)
            for i, f in enumerate(files):
                cls_index = int(np.asarray(result.targets)[i])
                buffer = io.BytesIO()
                np.save(buffer, result.raw[i])
                # the registry name, never the title: "Grad-CAM++" would sanitise to "Grad-CAM"
                name = f"{i:03d}_{safe_name(f.stem)}_{cls.name}_{label}.npy"
                write_atomic(maps_dir / name, buffer.getvalue(), args.overwrite)
                cells[i].append((overlay(display[i], result.maps[i]),
                                 f"class {cls_index} (score {probs[i, cls_index]:.3f})"))
                top5[i][0].append(cls_index)
                top5[i][1].append(result.maps[i])
        if args.target == "top5":
            # one figure per image: the image, then each top class with its probability and
            # map (plotting.top_classes' figure, from the maps computed above)
            from tfvis.inspect.report import _png
            from tfvis.plotting.inspect import top_classes_figure

            (out / "top5").mkdir(exist_ok=True)
            for i, f in enumerate(files):
                fig = top_classes_figure(display[i], probs[i], *top5[i])
                fig.suptitle(f"{f.name}: {cls.title}", fontsize=9)
                name = f"{i:03d}_{safe_name(f.stem)}_{cls.name}_top5.png"
                write_atomic(out / "top5" / name, _png(fig), args.overwrite)
            notes.append("top-5 figures (image, then each class with its probability and "
                         "map): top5/")
    _print_warnings(caught)
    settings = ", ".join(f"{k}={v!r}" for k, v in options.items() if k != "layer")
    gallery = Gallery(f"tfvis: {cls.title} on {Path(args.model).name}",
                      ["input"] + [f"{cls.name} {label}" for label, _ in panels],
                      notes=notes + ([f"layer: {explainer.layer}"] if explainer.layer else [])
                      + ([f"options: {settings}"] if settings else []))
    for i, f in enumerate(files):
        gallery.add_row(f.name, [(display[i], f"predicted {int(order[i, 0])}")] + cells[i])
    index = gallery.write(out, overwrite=args.overwrite)
    print(f"wrote {index}")
    return 0


def _mask_files(masks_dir: str, files: Sequence[Path]) -> list[Path]:
    """For each image, the mask in ``masks_dir`` with the same name stem (no TensorFlow)."""
    from tfvis.io import IMAGE_SUFFIXES

    folder = Path(masks_dir)
    if not folder.is_dir():
        raise UsageError(f"--masks {masks_dir}: not a folder (masks are image files named like "
                         "the images, in one folder)")
    by_stem: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(f.stem, f)
    missing = [f.name for f in files if f.stem not in by_stem]
    if missing:
        raise UsageError(f"no mask in {folder} for {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}: each image needs a mask file "
                         "with the same name stem (e.g. cat.png for cat.jpg)")
    return [by_stem[f.stem] for f in files]


def _evaluate_pairs(items: Sequence[str] | None) -> list[tuple[str, str]]:
    """``--option [NAME.]KEY=VALUE`` items as ``(key, value)`` pairs (no TensorFlow)."""
    pairs = []
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        prefix, dot, option = key.rpartition(".")
        option = option.replace("-", "_")
        if not sep or not option.isidentifier() or (dot and not prefix.strip()):
            raise UsageError("--option takes [NAME.]KEY=VALUE (e.g. deletion.steps=32 or "
                             f"num_masks=1000), not {item!r}")
        pairs.append((f"{prefix}.{option}" if dot else option, value))
    return pairs


def _evaluate_options(pairs: Sequence[tuple[str, str]], methods: Sequence[str],
                      metrics: Sequence[str]) -> tuple[dict, dict]:
    """``--option`` pairs as ``(method options, metric options)`` per registry/metric name.

    ``NAME.KEY=VALUE`` goes to that method (name or title) or metric; a bare ``KEY=VALUE`` to
    every method that has the option.

    Raises:
      UsageError: a name that is not evaluated, or an option no such method or metric has.
    """
    method_opts: dict[str, dict] = {m: {} for m in methods}
    metric_opts: dict[str, dict] = {m: {} for m in metrics}
    for key, value in pairs:
        prefix, dot, option = key.rpartition(".") if "." in key else ("", "", key)
        if not dot:
            owners = [m for m in methods if option in method_options(resolve_method(m))
                      or option == "layer" and "layer" in inspect.signature(
                          resolve_method(m).__init__).parameters]
            if not owners:
                raise UsageError(f"no method among {', '.join(methods) or '(none)'} has the "
                                 f"option {option!r}; write NAME.{option}=... for a metric")
            for m in owners:
                method_opts[m][option] = parse_value(value)
            continue
        metric = prefix.lower().replace("-", "_")
        if metric in metric_opts:
            allowed = _metric_option_names(metric)
            if option not in allowed:
                raise UsageError(f"metric {metric} has no option {option!r}; its options: "
                                 f"{', '.join(allowed)}")
            metric_opts[metric][option] = parse_value(value)
            continue
        if prefix.lower() in _BASELINES:
            raise UsageError(f"the {prefix} baseline has no options")
        try:
            cls = resolve_method(prefix)
        except UsageError:
            raise UsageError(f"--option {key}: {prefix!r} is neither an evaluated method "
                             f"({', '.join(methods) or 'none'}) nor a metric "
                             f"({', '.join(metrics)})") from None
        if cls.name not in method_opts:
            raise UsageError(f"--option {key}: {cls.name} is not among --methods")
        if option == "layer":
            method_opts[cls.name]["layer"] = value
        else:
            method_opts[cls.name].update(parse_options(cls, [(option, value)]))
    return method_opts, metric_opts


def _metric_option_names(metric: str) -> list[str]:
    """The constructor options of a metric built by name (without model, batch_size)."""
    from tfvis import metrics as m

    cls = {"deletion": m.Deletion, "insertion": m.Insertion, "pointing_game": m.PointingGame,
           "pointing_energy": m.PointingGame, "average_drop": m.AverageDrop,
           "increase_in_confidence": m.IncreaseInConfidence, "mu_fidelity": m.MuFidelity,
           "localization_error": m.LocalizationError}[metric]
    names = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None:
            names += [p.name for p in list(inspect.signature(init).parameters.values())[1:]
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    skip = {"model", "batch_size", "energy"}
    return [n for n in dict.fromkeys(names) if n not in skip]


def _channel_list(text: str | None) -> list[int] | None:
    """``--channels``: ``0-15``, ``0,3,7`` or both (``0-3,9``); None for every channel."""
    if text is None:
        return None
    channels: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise UsageError(f"--channels {text!r}: give indices and ranges like 0-15 or 0,3,7")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise UsageError(f"--channels {text!r}: range {low}-{high} is empty")
        channels.extend(range(low, high + 1))
    return channels


def _visualize(args) -> int:
    from tfvis.io import check_model_path

    out = _output_folder(args.out, ["grid.png"], args.overwrite)
    channels = _channel_list(args.channels)
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(args.debug)
    import numpy as np

    import tfvis
    from tfvis.gallery import save_png
    from tfvis.io import load_model

    model = load_model(args.model, trust=args.trust_model).model
    layer = _layer_arg(model, args.layer, args.model)
    result = tfvis.filters(model, layer, channels, steps=args.steps, seed=args.seed,
                           param=args.param, learning_rate=args.learning_rate, verbose=1)
    out.mkdir(parents=True, exist_ok=True)
    for label, image in zip(result.labels, result.images):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("_") or "image"
        save_png(out / f"{name}.png", (np.clip(image, 0, 1) * 255).astype(np.uint8))
    figure = result.grid()
    with tempfile.NamedTemporaryFile(dir=out, suffix=".png", delete=False) as tmp:
        figure.savefig(tmp.name, dpi=80, bbox_inches="tight")
    os.replace(tmp.name, out / "grid.png")
    print(f"wrote {len(result.images)} images and {out / 'grid.png'}")
    return 0


def _explain_dataset(args) -> int:
    from tfvis.distributed.command import run_command

    return run_command(args)


def _inspect(args) -> int:
    from tfvis.io import check_model_path, image_files

    out = _output_folder(args.out, ["index.html"], args.overwrite)
    files = image_files(args.data) if args.data else []
    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(args.debug)
    from tfvis.inputs import input_shape
    from tfvis.inspect.report import write_report
    from tfvis.io import load_images, load_model

    model = load_model(args.model, trust=args.trust_model).model
    images = display = None
    if files:
        images, display, _, notes = load_images(files, input_shape(model), args.preprocess)
        for note in notes:
            print(note)
    layers = [_layer_arg(model, name, args.model) for name in args.layers] if args.layers else None
    index = write_report(model, images, out, layers, channels=args.channels, k=args.k,
                         display=display, overwrite=args.overwrite)
    print(f"wrote {index}")
    return 0


def _neighbours(args) -> int:
    from tfvis.io import check_model_path, image_files

    # Everything that can be checked without TensorFlow comes first.
    out = _output_folder(args.out, NEIGHBOURS_FILES, args.overwrite)
    if args.k < 1:
        raise UsageError(f"--k must be a positive number of neighbours, not {args.k}")
    if args.faiss_index is not None and args.backend != "faiss":
        raise UsageError("--faiss-index needs --backend faiss")
    data_files = image_files(args.data)
    query_files = image_files(args.query)
    if args.k > len(data_files):
        raise UsageError(f"--k {args.k} is more than the {len(data_files)} searched images")
    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(args.debug)
    import csv

    from tfvis.gallery import write_atomic
    from tfvis.inputs import input_shape
    from tfvis.inspect.neighbours import FeatureIndex
    from tfvis.inspect.report import _png
    from tfvis.io import load_images, load_model
    from tfvis.plotting.inspect import neighbours as neighbours_figure

    model = load_model(args.model, trust=args.trust_model).model
    layer = _layer_arg(model, args.layer, args.model)
    shape = input_shape(model)
    x, display, _, notes = load_images(data_files, shape, args.preprocess)
    q, q_display, _, q_notes = load_images(query_files, shape, args.preprocess)
    for note in notes + q_notes:
        print(note)
    faiss = {"faiss_index": args.faiss_index or "Flat"} if args.backend == "faiss" else {}
    index = FeatureIndex(model, layer, x, metric=args.metric, backend=args.backend, **faiss)
    idx, dist = index.query(q, k=args.k)
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(["query", "rank", "index", "image", "distance"])
    for i, f in enumerate(query_files):
        for j in range(idx.shape[1]):
            table.writerow([f.name, j + 1, int(idx[i, j]), data_files[int(idx[i, j])].name,
                            f"{float(dist[i, j]):.6g}"])
    fig = neighbours_figure(q_display, display, idx, dist)
    fig.suptitle(f"{args.metric} neighbours in {index.layer}", fontsize=9)
    write_atomic(out / "neighbours.png", _png(fig), args.overwrite)
    write_atomic(out / "neighbours.csv", text.getvalue().encode("utf-8"), args.overwrite)
    print(f"wrote {', '.join(str(out / name) for name in NEIGHBOURS_FILES)}")
    return 0


def _evaluate(args) -> int:
    from tfvis.io import check_model_path, image_files

    # Everything that can be checked without TensorFlow comes first.
    out = _output_folder(args.out, EVALUATE_FILES, args.overwrite)
    files = image_files(args.images)
    mask_files = _mask_files(args.masks, files) if args.masks else None
    metrics = []
    for name in args.metrics:
        key = name.lower().replace("-", "_")
        if key == "all":
            metrics += list(EVALUATE_METRICS)
        elif key in EVALUATE_METRICS:
            metrics.append(key)
        else:
            close = difflib.get_close_matches(key, EVALUATE_METRICS, n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"unknown metric {name!r}.{hint} Metrics: "
                             f"{', '.join(EVALUATE_METRICS)} or all")
    metrics = list(dict.fromkeys(metrics))
    if mask_files is None and all(m in _NEEDS_MASKS for m in metrics):
        raise UsageError(f"{', '.join(metrics)} need object masks: pass --masks DIR")
    pairs = _evaluate_pairs(args.option)
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive int, got {args.batch_size}")
    check_model_path(args.model, trust=args.trust_model)

    _import_tensorflow(args.debug)
    import numpy as np

    from tfvis.explainers import REGISTRY
    from tfvis.gallery import write_atomic
    from tfvis.inputs import input_shape
    from tfvis.io import load_images, load_model, read_image
    from tfvis.metrics.evaluate import build_metric, evaluate

    rows: list[str] = []
    for name in args.methods:
        if name.lower() == "all":
            rows += list(REGISTRY)
        elif name.lower() in _BASELINES:
            rows.append(_BASELINES[name.lower()])
        else:
            rows.append(resolve_method(name).name)
    rows = list(dict.fromkeys(rows))
    methods = [r for r in rows if r not in _BASELINES.values()]
    method_opts, metric_opts = _evaluate_options(pairs, methods, metrics)
    loaded = load_model(args.model, trust=args.trust_model)
    model = loaded.model
    for name in methods:
        layer = method_opts[name].get("layer")
        _check_supported(REGISTRY[name], model, loaded.kind, layer)
        if layer is not None:
            method_opts[name]["layer"] = _layer_arg(model, str(layer), args.model)
    x, _, _, notes = load_images(files, input_shape(model), args.preprocess)
    for note in notes:
        print(note)
    masks = None
    if mask_files is not None:
        import cv2

        height, width = x.shape[1:3]
        masks = []
        for f in mask_files:
            mask = read_image(f).max(axis=-1)
            if mask.shape != (height, width):
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
            if not (mask > 127).any():
                raise UsageError(f"mask {f} has no object pixel (none brighter than 127)")
            masks.append(mask > 127)
        masks = np.stack(masks)
    probs = np.asarray(model.predict(x, verbose=0))
    if probs.ndim != 2:
        raise UnsupportedMethod(f"the model output has shape {probs.shape}; class targets "
                                "need a (N, classes) output")
    target = _targets(args.target, probs.shape[1]) if args.target != "top5" else None
    if target is None:
        raise UsageError("--target takes top1 or a class index for evaluate")
    targets = target[0][1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = []
        try:
            for m in metrics:
                built.append(build_metric(m, model, seed=args.seed, batch_size=args.batch_size,
                                          **metric_opts[m]))
        except (ValueError, TypeError) as err:
            raise UsageError(f"metric {m}: {err}") from None
        explainers = []
        for name in rows:
            if name in _BASELINES.values():
                explainers.append(name)
                continue
            cls = REGISTRY[name]
            try:
                explainers.append(cls(model, verbose=0, **method_opts[name]))
            except (ValueError, TypeError) as err:
                message = _short_error(err, args.model)
                if method_opts[name]:
                    raise UsageError(f"{cls.title}: {message}") from None
                raise UnsupportedMethod(f"{cls.title}: {message}") from None
        evaluation = evaluate(model, x, explainers, built, targets=targets, masks=masks,
                              seed=args.seed, batch_size=args.batch_size,
                              verbose=0 if args.quiet else 1)
    _print_warnings(caught)
    out.mkdir(parents=True, exist_ok=True)
    evaluation.notes[:0] = [f"model: {Path(args.model).name}; images: {len(files)}; target: "
                            f"{args.target}; preprocess: {args.preprocess}"] + [
        f"{k}: {v}" for k, v in evaluation.settings["metrics"].items()]
    markdown = evaluation.to_markdown()
    write_atomic(out / "table.md", markdown.encode("utf-8"), args.overwrite)
    evaluation.to_csv(out / "table.csv", overwrite=args.overwrite)
    written = ["table.md", "table.csv"]
    if {"deletion", "insertion"} & set(evaluation.metrics):
        from tfvis.plotting.evaluation import deletion_curves

        buffer = io.BytesIO()
        deletion_curves(evaluation).savefig(buffer, format="png", dpi=120)
        write_atomic(out / "curves.png", buffer.getvalue(), args.overwrite)
        written.append("curves.png")
    print(markdown)
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return 0


def _demo(args) -> int:
    from tfvis.demo import check_out_folder

    check_out_folder(args.out, args.overwrite)
    _import_tensorflow(args.debug)
    from tfvis.demo import run_demo

    methods = None
    if args.methods:
        methods = list(dict.fromkeys(resolve_method(m).name for m in args.methods))
    run_demo(args.out, methods=methods, epochs=args.epochs, n_train=args.train_images,
             seed=args.seed, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code (never raises, unless ``--debug``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    parser = build_parser(debug)
    with _quiet_tensorflow_logs(debug):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
            return int(exit_.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    from tfvis.io import UnsafeModelError

    from tfvis.featurevis.command import COMMANDS

    run = {"demo": _demo, "layers": _layers, "explain": _explain,
           "evaluate": _evaluate, "inspect": _inspect,
           "neighbours": _neighbours, "explain-dataset": _explain_dataset,
           "visualize": _visualize, **COMMANDS}[args.command]
    codes = ((UnsafeModelError, 3), (UnsupportedMethod, 4), (UsageError, 2),
             (FileNotFoundError, 2), (FileExistsError, 2), (ValueError, 2), (TypeError, 2),
             (Exception, 1))
    with _quiet_tensorflow_logs(args.debug):
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
