"""``tfvis invert``, ``tfvis style`` and ``tfvis attack``: what a representation keeps and
how it breaks, from the command line.

`add_parsers` adds the three sub-commands to `tfvis.cli`'s parser and `COMMANDS` maps their
names to the functions that run them. They follow the CLI's rules: everything that needs no
TensorFlow (the output folder, the image files, the model path) is checked first, models load
in Keras's safe mode (``--trust-model`` for anything else), each writes a gallery page
(``index.html``) and its figures inside ``--out`` only, atomically, and errors are
`tfvis.cli.UsageError` (exit code 2) or `tfvis.io.UnsafeModelError` (3).

Images are read in display space ([0, 1]); ``--preprocess`` states what the model expects
(``none``: pixels 0..255, ``scale``: 0..1, or a ``keras.applications`` module name whose
``preprocess_input`` then runs inside the optimised graph).
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

EPILOG = """examples:
  tfvis invert model.keras cat.png --layer conv1a --layer conv3b --out inv/
  tfvis style vgg16.keras content.jpg style.jpg --preprocess vgg16 --steps 300 --out styled/
  tfvis attack model.keras photos/ --eps 8/255 --method pgd --explain gradcam --out attack/
  tfvis attack model.keras cat.png --target 3 --steps 40 --out attack/"""


def _common(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--out", required=True, help="output folder (index.html and figures)")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    p.add_argument("--seed", type=int, default=0, help="seed of every random start (default 0)")
    p.add_argument("--preprocess", default="none",
                   help="what the model expects: none (0..255), scale (0..1) or a "
                        "keras.applications module name, e.g. vgg16 (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--trust-model", action="store_true",
                   help="allow .h5, SavedModel folders, remote paths (for this load only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parsers(sub: Any) -> None:
    """Adds ``invert``, ``style`` and ``attack`` to ``sub`` (argparse subparsers)."""
    fmt = argparse.RawDescriptionHelpFormatter
    inv = sub.add_parser("invert", help="reconstruct images from a layer's features "
                         "(Mahendran & Vedaldi), one column per layer", epilog=EPILOG,
                         formatter_class=fmt)
    inv.add_argument("model", help=".keras file (others need --trust-model)")
    inv.add_argument("images", nargs="+", help="image files or folders")
    inv.add_argument("--layer", action="append", required=True,
                     help="layer name or path to invert; repeat for several layers")
    _common(inv, 200)

    sty = sub.add_parser("style", help="neural style transfer (Gatys et al.)", epilog=EPILOG,
                         formatter_class=fmt)
    sty.add_argument("model", help=".keras file (others need --trust-model)")
    sty.add_argument("content", help="the content image")
    sty.add_argument("style", help="the style image")
    sty.add_argument("--content-layers", nargs="+", metavar="LAYER",
                     help="default: block4_conv2 for keras.applications VGG16/VGG19")
    sty.add_argument("--style-layers", nargs="+", metavar="LAYER",
                     help="default: block1_conv1 .. block5_conv1 for VGG16/VGG19")
    sty.add_argument("--style-weight", type=float, default=1e3,
                     help="beta, the style loss's weight (content's is 1; default 1e3)")
    _common(sty, 200)

    att = sub.add_parser("attack", help="adversarial images (FGSM / PGD) and how an explainer "
                         "sees them", epilog=EPILOG, formatter_class=fmt)
    att.add_argument("model", help=".keras file (others need --trust-model)")
    att.add_argument("images", nargs="+", help="image files or folders")
    att.add_argument("--method", choices=("pgd", "fgsm"), default="pgd")
    att.add_argument("--eps", default="8/255",
                     help="L-inf budget in [0, 1] display units, e.g. 8/255 (default)")
    att.add_argument("--target", type=int, default=None,
                     help="class to reach (targeted attack); default: any other class")
    att.add_argument("--explain", default="gradcam",
                     help="explainer for the before/after maps (registry name or title; "
                          "'none' to skip; default gradcam)")
    _common(att, 10)


def _number(text: str, what: str) -> float:
    from tfvis.cli import UsageError

    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{what} {text!r}: give a number such as 0.03 or 8/255") from None


def convention(name: str) -> tuple[tuple[float, float], Callable | None]:
    """``--preprocess`` as ``(input_range, preprocess)`` for display-space images."""
    if name == "none":
        return (0.0, 255.0), None
    if name == "scale":
        return (0.0, 1.0), None
    from tfvis.cli import UsageError
    from tfvis.io import application_preprocess

    try:
        return (0.0, 255.0), application_preprocess(name)
    except ValueError as err:
        raise UsageError(f"--preprocess: {err}") from None


def _start(args, outputs: list[str], files: list[str] | None = None
           ) -> tuple[Path, list[Path]]:
    """Checks what needs no TensorFlow, then imports it: ``(out, image files)``."""
    from tfvis.cli import UsageError, _import_tensorflow, _output_folder
    from tfvis.io import check_model_path, image_files

    out = _output_folder(args.out, ["index.html", "summary.json", *outputs], args.overwrite,
                         folders=("images",))
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    files = image_files(files if files is not None else args.images)
    check_model_path(args.model, trust=args.trust_model)
    _import_tensorflow(args.debug)
    return out, files


def _model_and_images(args, files: list[Path]):
    from tfvis.inputs import input_shape
    from tfvis.io import load_images, load_model

    model = load_model(args.model, trust=args.trust_model).model
    x, _, _, notes = load_images(files, input_shape(model), "scale")
    for note in notes:
        print(note)
    return model, x, notes


def _rgb(image: Any):
    from tfvis.plotting.images import to_uint8_rgb

    return to_uint8_rgb(image)


def _write(out: Path, gallery, figures: dict[str, Any], summary: dict, overwrite: bool) -> Path:
    import io

    from tfvis.gallery import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        write_atomic(out / name, buffer.getvalue(), overwrite)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode(), overwrite)
    index = gallery.write(out, overwrite=overwrite)
    print(f"wrote {index}")
    return index


def run_invert(args) -> int:
    """``tfvis invert``: one row per image, one reconstruction per ``--layer``."""
    from tfvis.cli import _layer_arg

    out, files = _start(args, ["reconstructions.png"])
    from tfvis.featurevis.inversion import invert
    from tfvis.gallery import Gallery

    input_range, preprocess = convention(args.preprocess)
    model, x, notes = _model_and_images(args, files)
    layers = [_layer_arg(model, layer, args.model) for layer in args.layer]
    result = invert(model, layers, x, steps=args.steps, seed=args.seed,
                    input_range=input_range, preprocess=preprocess,
                    verbose=0 if args.quiet else 1)
    psnr = result.psnr()
    gallery = Gallery(f"tfvis: inverting {Path(args.model).name}",
                      ["input"] + [f"from {p}" for p in result.layers],
                      notes=notes + [f"Mahendran & Vedaldi inversion, {args.steps} steps from "
                                     f"seeded noise (seed {args.seed}); under each: PSNR and "
                                     "the relative feature error of the reconstruction."])
    for i, f in enumerate(files):
        cells = [(_rgb(x[i]), f.name)]
        for k in range(len(result.layers)):
            cells.append((_rgb(result.images[k, i]), f"PSNR {psnr[k, i]:.1f} dB, feature error "
                                               f"{result.feature_error[k, i]:.3f}"))
        gallery.add_row(f.name, cells)
    summary = {"layers": list(result.layers), "files": [f.name for f in files],
               "psnr_db": psnr.tolist(), "feature_error": result.feature_error.tolist(),
               "steps": args.steps, "seed": args.seed}
    _write(out, gallery, {"reconstructions.png": result.figure()}, summary, args.overwrite)
    return 0


def run_style(args) -> int:
    """``tfvis style``: the content image, the style image and the stylised image."""
    out, files = _start(args, ["stylised.png"], [args.content, args.style])
    import numpy as np

    from tfvis.featurevis.style import style_transfer
    from tfvis.gallery import Gallery
    from tfvis.io import read_image
    from tfvis.plotting.featurevis import grid

    input_range, preprocess = convention(args.preprocess)
    model, x, notes = _model_and_images(args, files[:1])
    style = read_image(files[1]).astype(np.float32) / 255.0
    result = style_transfer(model, x[0], style, content_layers=args.content_layers,
                            style_layers=args.style_layers, beta=args.style_weight,
                            steps=args.steps, seed=args.seed, input_range=input_range,
                            preprocess=preprocess, verbose=0 if args.quiet else 1)
    image = result.images[0]
    gallery = Gallery(f"tfvis: style transfer with {Path(args.model).name}",
                      ["content", "style", "result"],
                      notes=notes + [f"Gatys et al., {args.steps} steps from the content "
                                     f"image; style weight {args.style_weight:g}."])
    gallery.add_row(files[0].name, [(_rgb(x[0]), files[0].name), (_rgb(style), files[1].name),
                                    (_rgb(image), "stylised")])
    extras = {k: v for k, v in result.extras.items()
              if isinstance(v, (int, float, str, list, tuple))}
    summary = {"content": files[0].name, "style": files[1].name, "steps": args.steps,
               "seed": args.seed, "style_weight": args.style_weight, **extras}
    figure = grid(np.stack([x[0], image]), ["content", "stylised"], columns=2, size=3.0)
    _write(out, gallery, {"stylised.png": figure}, summary, args.overwrite)
    return 0


def run_attack(args) -> int:
    """``tfvis attack``: clean and adversarial image, perturbation, and the maps before and
    after (Selvaraju et al. sec. 6)."""
    from tfvis.cli import UsageError, resolve_method

    eps = _number(args.eps, "--eps")
    if not 0 < eps <= 1:
        raise UsageError(f"--eps {args.eps}: the budget must be in (0, 1] (display units)")
    out, files = _start(args, ["explanations.png"])
    cls = None if args.explain.lower() == "none" else resolve_method(args.explain)
    from tfvis.featurevis.adversarial import adversarial, explain_adversarial
    from tfvis.gallery import Gallery
    from tfvis.plotting.adversarial import perturbation_image
    from tfvis.plotting.images import overlay

    input_range, preprocess = convention(args.preprocess)
    model, x, notes = _model_and_images(args, files)
    result = adversarial(model, x, target=args.target, eps=eps, steps=args.steps,
                         method=args.method, seed=args.seed, input_range=input_range,
                         preprocess=preprocess, verbose=0 if args.quiet else 1)
    columns = ["input", "adversarial", "perturbation"]
    explained = None
    if cls is not None:
        explainer = cls(model, verbose=0)
        explained = explain_adversarial(explainer, x, result)
        columns += [f"{cls.name}: original class, clean", f"{cls.name}: original class, attacked",
                    f"{cls.name}: new class, attacked"]
    gallery = Gallery(f"tfvis: {args.method.upper()} attack on {Path(args.model).name}",
                      columns, notes=notes + [
                          f"{args.method.upper()}, L-inf eps {args.eps}, {args.steps} steps, "
                          f"seed {args.seed}: {int(result.success.sum())} of {len(result)} "
                          "images change class."])
    for i, f in enumerate(files):
        before, after = int(result.original_classes[i]), int(result.adversarial_classes[i])
        cells = [(_rgb(x[i]), f"class {before} (p {result.original_probabilities[i, before]:.2f})"),
                 (_rgb(result.images[i]), f"class {after} (p "
                                    f"{result.adversarial_probabilities[i, after]:.2f})"),
                 (_rgb(perturbation_image(result.perturbations[i])), "perturbation (amplified)")]
        if explained is not None:
            rho = float(explained.rank_correlation[i])
            cells += [(overlay(x[i], explained.original.maps[i]), f"class {before}"),
                      (overlay(result.images[i], explained.attacked.maps[i]),
                       f"class {before}, rank corr. {rho:.2f}"),
                      (overlay(result.images[i], explained.adversarial.maps[i]),
                       f"class {after}")]
        gallery.add_row(f.name, cells)
    summary = {"files": [f.name for f in files], "method": args.method, "eps": eps,
               "steps": args.steps, "seed": args.seed, "target": args.target,
               "original_classes": result.original_classes.tolist(),
               "adversarial_classes": result.adversarial_classes.tolist(),
               "success": result.success.tolist(), "success_rate": result.success_rate}
    figures = {}
    if explained is not None:
        summary["explainer"] = cls.name
        summary["rank_correlation"] = [float(v) for v in explained.rank_correlation]
        figures["explanations.png"] = explained.figure()
    _write(out, gallery, figures, summary, args.overwrite)
    return 0


#: Sub-command name -> function, for `tfvis.cli.main`.
COMMANDS = {"invert": run_invert, "style": run_style, "attack": run_attack}
