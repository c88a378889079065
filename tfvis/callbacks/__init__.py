"""Keras callbacks: thin adapters over explainers (configuration in ``__init__``, writers
created lazily, closed in ``on_train_end``)."""

from tfvis.callbacks.evolution import FeatureEvolution
from tfvis.callbacks.logger import ExplanationLogger
from tfvis.callbacks.writers import Writers

__all__ = ["ExplanationLogger", "FeatureEvolution", "Writers"]
