"""How every explainer step is compiled."""

from __future__ import annotations

import functools
from typing import Callable

import tensorflow as tf


def compile_step(fn: Callable) -> tf.types.experimental.GenericFunction:
    """``fn`` as a `tf.function` (no autograph; shapes relaxed instead of retracing per size).

    Wrapped in a ``functools.partial`` so that TF's retracing detector keys on this step, not
    on the code it shares with every other explainer's step (one trace per explainer is
    normal, not the "frequent retracing" TF would warn about after five explainers).
    """
    return tf.function(functools.partial(fn), reduce_retracing=True, autograph=False)
