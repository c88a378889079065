"""Figures of adversarial attacks and fooling images (matplotlib is imported on use only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tfvis.plotting.figures import _new_figure, show_map
from tfvis.plotting.images import to_uint8_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def _name(k: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) \
        else f"class {k}"


def perturbation_image(perturbation: np.ndarray) -> np.ndarray:
    """A perturbation ``(H, W, C)`` as a displayable image: grey at 0, scaled so that its
    largest absolute value reaches black or white."""
    p = np.asarray(perturbation, np.float32)
    peak = float(np.abs(p).max())
    return np.clip(0.5 + 0.5 * p / peak, 0, 1) if peak > 0 else np.full_like(p, 0.5)


def explanation_figure(
    explanation: Any,
    class_names: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    cell_size: float = 2.0,
) -> Figure:
    """The attack and its explanations side by side, one row per image.

    Columns: the clean image, the perturbation (rescaled), the adversarial image, the map of
    the original class on the clean image, of the original class on the adversarial image
    (with the rank correlation of the two), and of the adversarial class on the adversarial
    image (Selvaraju et al. 2017, sec. 6).

    Args:
      explanation: an `AdversarialExplanation` (``tfvis.explain_adversarial``).
      class_names: names of the classes for the titles.
      alpha, cmap: the overlay (see `tfvis.plotting.overlay`).
      cell_size: inches per cell.

    Returns:
      A new matplotlib Figure (never shown).
    """
    e = explanation
    n = len(e)
    if n == 0:
        raise ValueError("the explanation holds no images")
    method = getattr(e.original, "method", "") or "map"
    fig = _new_figure(figsize=(6 * cell_size, n * (cell_size + 0.35)))
    axes = fig.subplots(n, 6, squeeze=False)
    for i in range(n):
        label, new = int(e.labels[i]), int(e.adversarial_classes[i])
        delta = e.adversarial_images[i] - e.images[i]
        cells = [
            (to_uint8_rgb(e.images[i]),
             f"{_name(label, class_names)} ({e.original_confidence[i]:.2f})"),
            (to_uint8_rgb(perturbation_image(delta)),
             f"perturbation (max {np.abs(delta).max() * 255:.1f}/255)"),
            (to_uint8_rgb(e.adversarial_images[i]),
             f"{_name(new, class_names)} ({e.adversarial_confidence[i]:.2f})"),
        ]
        for j, (img, title) in enumerate(cells):
            axes[i, j].imshow(img)
            axes[i, j].set_axis_off()
            axes[i, j].set_title(title, fontsize=8)
        maps = [
            (e.images[i], e.original.maps[i], f"{method}: {_name(label, class_names)}, clean"),
            (e.adversarial_images[i], e.attacked.maps[i],
             f"{_name(label, class_names)}, attacked (rho {e.rank_correlation[i]:.2f})"),
            (e.adversarial_images[i], e.adversarial.maps[i],
             f"{_name(new, class_names)}, attacked"),
        ]
        for j, (img, heat, title) in enumerate(maps, start=3):
            show_map(img, heat, axes[i, j], alpha, cmap, title)
            axes[i, j].title.set_fontsize(8)
    fig.tight_layout()
    return fig


def confidence_curves(
    runs: Any,
    *,
    threshold: float | None = None,
    ax: Any = None,
) -> Figure:
    """The target's probability per step of fooling-image runs (``tfvis.fooling_image``).

    Args:
      runs: a `Visualization` from `fooling_image`, or a mapping title -> such results
        (e.g. unregularised and regularised: the trade-off between recognisability and
        confidence), drawn in one colour each, one line per image.
      threshold: a dashed line (default: the first run's threshold).
      ax: a matplotlib Axes to draw on; None makes a new Figure.

    Returns:
      The Figure holding ``ax``.
    """
    items: Mapping[str, Any] = runs if isinstance(runs, Mapping) else {"": runs}
    if not items:
        raise ValueError("confidence_curves needs at least one run")
    if ax is None:
        ax = _new_figure(figsize=(5, 3)).add_subplot()
    colours = [f"C{i}" for i in range(10)]
    for k, (title, run) in enumerate(items.items()):
        probs = np.asarray(getattr(run, "probabilities", run), np.float32)
        if probs.ndim == 1:
            probs = probs[:, None]
        lines = ax.plot(np.arange(len(probs)), probs, color=colours[k % 10], lw=0.9)
        if title:
            lines[0].set_label(title)
        if threshold is None:
            threshold = getattr(run, "threshold", None)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.7)
    ax.set_xlabel("step")
    ax.set_ylabel("probability of the target")
    ax.set_ylim(0, 1.02)
    if any(items):
        ax.legend(fontsize=8, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure
