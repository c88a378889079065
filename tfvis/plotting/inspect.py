"""Figures for `tfvis.inspect`: feature maps, kernels, layer statistics, top patches,
neighbours, top classes and class means. matplotlib is imported inside each function; every
function returns the Figure and never calls ``show()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def _figure(rows: int, cols: int, cell: float = 1.4, **kwargs: Any):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(cols * cell, 2.0), max(rows * cell, 1.5)), **kwargs)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _image(image: np.ndarray) -> np.ndarray:
    from tfvis.plotting.images import to_uint8_rgb

    return to_uint8_rgb(np.asarray(image, np.float32))


def feature_maps(
    acts: Any,
    image: int = 0,
    channels: Sequence[int] | None = None,
    max_channels: int = 16,
    order: str = "mean",
    columns: int | None = None,
    cmap: str = "viridis",
) -> Figure:
    """A grid of one image's feature maps.

    Args:
      acts: ``(N, h, w, C)`` activations (e.g. ``tfvis.inspect.activations(...)[path]``), or a
        mapping ``{path: array}`` with one entry.
      image: which image of the batch.
      channels: the channels to show, in this order; None: the ``max_channels`` channels of
        largest mean activation on that image (``order="mean"``) or the first ones
        (``order="index"``).
      max_channels: channels shown when ``channels`` is None.
      order: ``"mean"`` or ``"index"``.
      columns: maps per row (default: about square).
      cmap: matplotlib colour map; each map has its own colour scale (its range is in the title).
    """
    if isinstance(acts, dict):
        if len(acts) != 1:
            raise ValueError(f"feature_maps draws one layer; got {list(acts)}: pass acts[path]")
        acts = next(iter(acts.values()))
    a = np.asarray(acts, np.float32)
    if a.ndim != 4:
        raise ValueError(f"feature maps must be (N, h, w, C), got shape {a.shape}")
    one = a[image]
    if channels is None:
        if order not in ("mean", "index"):
            raise ValueError(f"order must be 'mean' or 'index', got {order!r}")
        ranked = np.argsort(-one.mean(axis=(0, 1)), kind="stable") if order == "mean" \
            else np.arange(one.shape[-1])
        chosen = ranked[:max_channels]
    else:
        chosen = np.asarray(list(channels), np.int64)
    cols = columns or int(np.ceil(np.sqrt(len(chosen))))
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = _figure(rows, cols)
    for ax, c in zip(axes.flat, chosen):
        m = one[..., c]
        ax.imshow(m, cmap=cmap)
        ax.set_title(f"{c}: {m.min():.2g}..{m.max():.2g}", fontsize=7)
    return fig


def kernel_figure(kernel_images: np.ndarray, columns: int | None = None) -> Figure:
    """The images of `tfvis.inspect.kernels` as one tiled picture."""
    from tfvis.inspect.kernels import kernel_grid

    grid = kernel_grid(kernel_images, 32, columns)
    fig, axes = _figure(1, 1, cell=4)
    axes[0, 0].imshow(grid)
    return fig


def layer_stats_figure(stats: Any, ax: Any = None) -> Figure:
    """Per layer: activation mean +- std and range, fraction of zeros and dead channels, and
    the gradient (or activation) RMS on a log scale with flagged layers marked."""
    from matplotlib.figure import Figure

    rows = stats.rows
    x = np.arange(len(rows))
    if ax is None:
        fig = Figure(figsize=(max(6, 0.6 * len(rows) + 2), 7))
        axes = fig.subplots(3, 1, sharex=True)
    else:
        fig, axes = ax[0].figure, ax
    mean = np.array([r["mean"] for r in rows])
    std = np.array([r["std"] for r in rows])
    axes[0].errorbar(x, mean, yerr=std, fmt="o", label="mean +- std")
    axes[0].vlines(x, [r["min"] for r in rows], [r["max"] for r in rows], alpha=0.4,
                   label="min..max")
    axes[0].set_ylabel("activation")
    axes[0].legend(fontsize=7)
    axes[1].bar(x - 0.2, [r["zeros"] for r in rows], 0.4, label="fraction of zeros")
    axes[1].bar(x + 0.2, [r["dead"] / max(r["channels"], 1) for r in rows], 0.4,
                label="dead channels")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=7)
    rms = np.array([stats.rms.get(r["layer"], np.nan) for r in rows])
    axes[2].semilogy(x, np.where(rms > 0, rms, np.nan), "o-")
    for i, r in enumerate(rows):
        if r["flag"]:
            axes[2].annotate(r["flag"], (i, rms[i]), color="red", fontsize=7)
    axes[2].set_ylabel(("gradient" if stats.gradients is not None else "activation") + " RMS")
    axes[2].set_xticks(x, [r["layer"] for r in rows], rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    return fig


def top_patches(top: Any, images: Any, size: int = 32, max_channels: int | None = None,
                show: str | None = None) -> Figure:
    """Zeiler & Fergus fig. 2: for each channel (a row) its k strongest dataset patches.

    Args:
      top: a `tfvis.inspect.TopActivations`.
      images: the dataset's images (indexable by image index).
      size: the side each patch is drawn at.
      max_channels: rows drawn (default: all).
      show: ``"patches"``, ``"projections"`` (the pixel-space projections of
        ``top_activations(..., project=...)``, zero drawn mid-grey) or ``"both"`` (per row, the
        k projections then the k patches, as in the paper); default: ``"both"`` when the
        projections exist, else ``"patches"``.
    """
    if show is None:
        show = "both" if getattr(top, "projection", None) is not None else "patches"
    if show not in ("patches", "projections", "both"):
        raise ValueError(f"show must be 'patches', 'projections' or 'both', got {show!r}")
    blocks = []
    if show in ("projections", "both"):
        blocks.append(top.projections(size=size))
    if show in ("patches", "both"):
        blocks.append(top.patches(images, size=size))
    if max_channels is not None:
        blocks = [b[:max_channels] for b in blocks]
    k = max(len(p) for p in blocks[0])
    rows, cols = len(blocks[0]), k * len(blocks)
    fig, axes = _figure(rows, cols, cell=1.0)
    for b, block in enumerate(blocks):
        for r, row in enumerate(block):
            for c, patch in enumerate(row):
                axes[r, b * k + c].imshow(patch)
                axes[r, b * k + c].set_title(f"{top.value[r, c]:.2g}", fontsize=6)
    for r in range(rows):
        axes[r, 0].text(-0.1, 0.5, f"ch {int(top.channels[r])}", fontsize=7, ha="right",
                        va="center", transform=axes[r, 0].transAxes)
    what = {"patches": "receptive fields", "projections": f"{top.rule} projections",
            "both": f"{top.rule} projections | receptive fields"}[show]
    fig.suptitle(f"{top.layer}: strongest activations ({what})", fontsize=9)
    return fig


def neighbours(query_images: Any, data_images: Any, indices: Any, distances: Any = None
               ) -> Figure:
    """Seed 001's FC7 figure: each query image (first column) and its nearest neighbours.

    Args:
      query_images: ``(Q, H, W, C)``; data_images: the indexed images (indexable).
      indices: ``(Q, k)`` from `tfvis.inspect.FeatureIndex.query`; distances: ``(Q, k)``.
    """
    idx = np.asarray(indices)
    q, k = idx.shape
    fig, axes = _figure(q, k + 1)
    for i in range(q):
        axes[i, 0].imshow(_image(query_images[i]))
        axes[i, 0].set_title("query", fontsize=7)
        for j in range(k):
            axes[i, j + 1].imshow(_image(data_images[int(idx[i, j])]))
            label = f"#{int(idx[i, j])}"
            if distances is not None:
                label += f" {float(np.asarray(distances)[i, j]):.3f}"
            axes[i, j + 1].set_title(label, fontsize=6)
    return fig


def top_classes(model: Any, image: Any, explainer: Any, k: int = 5,
                class_names: Sequence[str] | None = None, display: Any = None) -> Figure:
    """The image, then for each of its top-k classes the probability and the explanation.

    Args:
      model: the Keras model (its outputs, e.g. softmax probabilities, are shown).
      image: one image ``(H, W, C)``, as the model takes it.
      explainer: an `Explainer` or a registry name (built on ``model``).
      k: classes shown (at most the number of classes).
      class_names: names of the classes (default: their indices).
      display: what the image looks like (uint8 RGB; default: ``image`` scaled for display),
        e.g. the photo before ``keras.applications`` preprocessing.
    """
    from tfvis.inspect.classes import top_class_maps

    x, probs, classes, result = top_class_maps(model, image, explainer, k)
    return top_classes_figure(x if display is None else display, probs, classes, result.maps,
                              class_names)


def top_classes_figure(image: Any, probs: Any, classes: Sequence[int], maps: Any,
                       class_names: Sequence[str] | None = None) -> Figure:
    """`top_classes`'s figure from maps already computed: ``maps[j]`` explains
    ``classes[j]``, whose output is ``probs[classes[j]]`` (``probs``: one image's outputs)."""
    from tfvis.plotting.images import overlay

    shown = _image(image)
    maps = np.asarray(maps)
    fig, axes = _figure(1, len(classes) + 1, cell=2.0)
    axes[0, 0].imshow(shown)
    axes[0, 0].set_title("image", fontsize=8)
    over = overlay(np.repeat(shown[None], len(classes), 0), maps)
    for j, c in enumerate(classes):
        c = int(c)
        name = class_names[c] if class_names is not None else str(c)
        axes[0, j + 1].imshow(over[j])
        axes[0, j + 1].set_title(f"{name}: {float(probs[c]):.2f}", fontsize=8)
    return fig


def class_means(means: Any, class_names: Sequence[str] | None = None, cmap: str = "jet"
                ) -> Figure:
    """Each class's mean explanation map (`tfvis.inspect.class_mean_maps`), with its count."""
    maps, counts = means.maps, means.counts
    fig, axes = _figure(1, len(maps), cell=2.0)
    for c, (m, n) in enumerate(zip(maps, counts)):
        axes[0, c].imshow(m, cmap=cmap, vmin=0)
        name = class_names[c] if class_names is not None else str(c)
        axes[0, c].set_title(f"{name} (n={int(n)})", fontsize=8)
    return fig
