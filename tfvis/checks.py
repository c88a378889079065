"""Argument checks shared by explainers and callbacks."""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` as an int when it is a positive integer (bools excluded), else ValueError.

    With ``allow_none``, None passes through unchanged.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
