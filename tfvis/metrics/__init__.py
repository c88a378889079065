"""Is an explanation faithful? Metrics over maps, images and a model.

A metric is built with its model (where it needs one) and options, and called on data; it
returns a `MetricResult` (``values`` per image, ``mean``, ``curves`` where it has them).
"""

from tfvis.metrics.result import MetricResult

__all__ = ["MetricResult"]
