"""Explain whole datasets: a resumable, sharded runner writing a chunked zarr store.

`explain_dataset` runs on one device, over the replicas of a `tf.distribute` strategy, or
(`explain_dataset_ray`) over Ray actors; `open_explanations` reads a run back lazily. zarr
(``pip install "tfvis[dataset]"``) and Ray (``pip install "tfvis[distributed]"``) are imported
only when used.
"""

from tfvis.distributed.runner import explain_dataset, explain_dataset_ray
from tfvis.distributed.store import DatasetExplanation, open_explanations

__all__ = ["DatasetExplanation", "explain_dataset", "explain_dataset_ray", "open_explanations"]
