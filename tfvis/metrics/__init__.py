"""Is an explanation faithful? Metrics over maps, images and a model.

A metric is built with its model (where it needs one) and options, and called on data; it
returns a `MetricResult` (``values`` per image, ``mean``, ``curves`` where it has them).
`evaluate` tabulates methods x metrics on a batch; `evaluate_store` scores a whole
`tfvis.explain_dataset` run from its store, streamed, without recomputing maps.
"""

from tfvis.metrics.dataset import evaluate_store
from tfvis.metrics.deletion import Deletion, Insertion
from tfvis.metrics.drop import AverageDrop, IncreaseInConfidence
from tfvis.metrics.evaluate import Evaluation, evaluate
from tfvis.metrics.fidelity import MuFidelity
from tfvis.metrics.localization import LocalizationError
from tfvis.metrics.pointing import PointingGame
from tfvis.metrics.result import MetricResult
from tfvis.metrics.sanity import SanityCheck

__all__ = [
    "AverageDrop",
    "Deletion",
    "Evaluation",
    "IncreaseInConfidence",
    "Insertion",
    "LocalizationError",
    "MetricResult",
    "MuFidelity",
    "PointingGame",
    "SanityCheck",
    "evaluate",
    "evaluate_store",
]
