"""Figures of `tfvis.metrics.evaluate` results. matplotlib is imported when a figure is drawn,
never at import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tfvis.plotting.figures import _new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_CURVES = (("deletion", "Deletion (lower AUC is better)", "pixels removed"),
           ("insertion", "Insertion (higher AUC is better)", "pixels inserted"))


def deletion_curves(evaluation: Any, axes: Any = None) -> Figure:
    """The mean deletion and insertion curves of each method of an `Evaluation`.

    One panel per curve metric that ran (deletion, insertion); in each, one line per method:
    the mean over images of the target's probability against the fraction of pixels removed
    or inserted, labelled with the mean AUC.

    Args:
      evaluation: a `tfvis.metrics.Evaluation` (from `tfvis.metrics.evaluate`).
      axes: matplotlib Axes to draw on, one per panel (a sequence, or one Axes when there is
        one panel); None makes a new Figure.

    Returns:
      The Figure that holds the axes.

    Raises:
      ValueError: the evaluation ran neither deletion nor insertion, or ``axes`` has the
        wrong number of Axes.
    """
    panels = [p for p in _CURVES if p[0] in getattr(evaluation, "metrics", ())]
    if not panels:
        raise ValueError("the evaluation has no deletion or insertion results: evaluate with "
                         "metrics=['deletion', 'insertion'] to draw their curves")
    if axes is None:
        fig = _new_figure(figsize=(4.2 * len(panels), 3.4))
        axes = [fig.add_subplot(1, len(panels), k + 1) for k in range(len(panels))]
    else:
        axes = list(np.atleast_1d(np.asarray(axes, dtype=object)).ravel())
        if len(axes) != len(panels):
            raise ValueError(f"axes must hold {len(panels)} Axes (one per panel: "
                             f"{', '.join(p[0] for p in panels)}), got {len(axes)}")
    for ax, (key, title, xlabel) in zip(axes, panels):
        for method in evaluation.methods:
            result = evaluation.results[method].get(key)
            if result is None or result.curves is None:
                continue
            x = np.asarray(result.extras.get("fractions",
                                              np.linspace(0, 1, result.curves.shape[1])))
            dashed = method in ("random", "centre")
            ax.plot(x, np.asarray(result.curves).mean(axis=0), linestyle="--" if dashed else "-",
                    label=f"{method} ({result.mean:.3f})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"fraction of {xlabel}")
        ax.set_ylabel("probability of the target")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
