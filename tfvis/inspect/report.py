"""One folder that shows what a model has inside: kernels, feature maps, layer statistics,
top dataset patches, and an ``index.html`` page linking them (used by ``tfvis inspect``)."""

from __future__ import annotations

import html
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


def write_report(model: Any, images: np.ndarray, out: str | os.PathLike,
                 layers: Sequence[Any] | None = None, *, channels: int = 8, k: int = 9,
                 display: np.ndarray | None = None, overwrite: bool = False,
                 batch_size: int = 32) -> Path:
    """Writes the inspection of ``model`` on ``images`` under ``out``; returns ``index.html``.

    Args:
      model: a functional or Sequential model.
      images: the model-ready inputs ``(N, H, W, C)``; None writes the kernels only.
      out: the output folder (created; nothing is written outside it).
      layers: the layers whose feature maps and top patches are shown (default: the first,
        middle and last 2-D convolutions).
      channels: channels shown per layer; k: patches per channel.
      display: what the images look like (uint8 RGB), for patches (default: ``images``).
      overwrite: replace an existing report (False raises FileExistsError).
      batch_size: samples per compiled chunk.
    """
    from tfvis.gallery import write_atomic
    from tfvis.inspect.kernels import conv_paths, kernels
    from tfvis.inspect.activations import activations, resolve_layers
    from tfvis.inspect.stats import layer_stats
    from tfvis.inspect.top import top_activations
    from tfvis.plotting import inspect as figures

    root = Path(out)
    if root.is_symlink():
        raise FileExistsError(f"{root} is a symbolic link; refusing to write through it")
    if (root / "index.html").exists() and not overwrite:
        raise FileExistsError(f"{root / 'index.html'} exists; pass overwrite=True "
                              "(--overwrite) to replace the report")
    root.mkdir(parents=True, exist_ok=True)
    if layers is None:
        convs = conv_paths(model)
        if not convs:
            raise ValueError(f"model {model.name!r} has no 2-D convolution; pass layers=")
        layers = list(dict.fromkeys([convs[0], convs[len(convs) // 2], convs[-1]]))
    paths = resolve_layers(model, layers, "the inspection report")
    shown = display if display is not None else images
    sections: list[tuple[str, str, str]] = []  # (title, file, caption)

    def save(name: str, fig: Any, title: str, caption: str = "") -> None:
        write_atomic(root / name, _png(fig), True)
        sections.append((title, name, caption))

    try:
        save("kernels.png", figures.kernel_figure(kernels(model)), "First-layer kernels",
             "normalised jointly: a dominating filter stands out")
    except ValueError as err:
        sections.append(("First-layer kernels", "", str(err)))
    if images is None:
        paths = []
    acts = {} if images is None else activations(model, images[:1], paths,
                                                 batch_size=batch_size)
    for path in paths:
        if acts[path].ndim == 4:
            save(f"maps_{_safe(path)}.png", figures.feature_maps(acts[path], 0,
                 max_channels=channels), f"Feature maps: {path}",
                 "image 0, channels by mean activation")
    if images is not None:
        stats = layer_stats(model, images, batch_size=batch_size)
        save("layer_stats.png", stats.figure(), "Layer statistics",
             ", ".join(f"{p}: {len(d)} dead" for p, d in stats.dead.items() if len(d)) or
             "no dead channels")
        write_atomic(root / "layer_stats.json", json.dumps(stats.rows, indent=1).encode(),
                     True)
    for path in paths:
        if acts[path].ndim != 4:
            continue
        top = top_activations(model, images, path,
                              channels=range(min(channels, acts[path].shape[-1])),
                              k=min(k, len(images)), batch_size=batch_size)
        if top.boxes is not None:
            save(f"top_{_safe(path)}.png", figures.top_patches(top, shown),
                 f"Strongest patches: {path}", f"receptive field {top.field.size}")
    e = html.escape
    body = "".join(
        f"<h2>{e(t)}</h2>" + (f'<img src="{e(f)}" alt="{e(t)}">' if f else "")
        + f"<p>{e(c)}</p>" for t, f, c in sections)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Inside "
            f"{e(model.name)}</title></head><body><h1>Inside the network: {e(model.name)}</h1>"
            f"<p>{0 if images is None else len(images)} images; layers {e(', '.join(paths))}; "
            "statistics in layer_stats.json</p>" + body + "</body></html>")
    index = root / "index.html"
    write_atomic(index, page.encode("utf-8"), True)
    return index


def _safe(path: str) -> str:
    from tfvis.gallery import safe_name

    return safe_name(path.replace("/", "__"))
