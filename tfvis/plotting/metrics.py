"""Figures of metric results. matplotlib is imported when a figure is drawn, never at import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from tfvis.plotting.figures import _new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_SIMILARITIES = (("spearman", "Spearman (signed)"), ("ssim", "SSIM"), ("hog", "HOG correlation"))


def sanity_curves(result: Any, ax: Any = None, similarities: bool = True) -> Figure:
    """Adebayo et al.'s curves: similarity to the original maps per randomisation step.

    The x axis is the unrandomised model ("original", similarity 1) then each step, top layer
    first, labelled with the layer randomised at that step.

    Args:
      result: a `SanityCheck` `MetricResult`, or a mapping ``{method name: result}`` (one
        curve per method, the rank correlation of absolute maps; the results must share the
        layers, i.e. come from one model and the same ``layers`` choice).
      ax: a matplotlib Axes to draw on; None makes a new Figure.
      similarities: for a single result, also draw the signed Spearman, SSIM and HOG curves.

    Returns:
      The Figure that holds ``ax``.

    Raises:
      ValueError: a result that is not a sanity check, or results over different layers.
    """
    results = dict(result) if isinstance(result, Mapping) else {"Spearman (absolute)": result}
    if not results:
        raise ValueError("sanity_curves needs at least one SanityCheck result")
    layers = None
    for name, r in results.items():
        if getattr(r, "name", None) != "sanity_check" or "layers" not in r.extras:
            raise ValueError(f"{name!r} is not a SanityCheck result (got "
                             f"{getattr(r, 'name', type(r).__name__)!r})")
        if layers is None:
            layers = tuple(r.extras["layers"])
        elif tuple(r.extras["layers"]) != layers:
            raise ValueError(f"the results randomise different layers ({layers} vs "
                             f"{tuple(r.extras['layers'])}): draw them in separate figures")
    if ax is None:
        ax = _new_figure(figsize=(max(4.0, 0.5 * len(layers) + 2.5), 3.2)).add_subplot()
    x = np.arange(len(layers) + 1)
    for name, r in results.items():
        ax.plot(x, np.r_[1.0, r.values], marker="o", label=name)
    if similarities and len(results) == 1:
        r = next(iter(results.values()))
        for key, label in _SIMILARITIES:
            if key in r.extras:
                ax.plot(x, np.r_[1.0, r.extras[key]], marker=".", linestyle="--", label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(("original",) + layers, rotation=60, ha="right", fontsize=8)
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("similarity to original maps")
    mode = next(iter(results.values())).extras.get("mode", "")
    ax.set_title(f"Model randomisation ({mode})", fontsize=9)
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax.figure
