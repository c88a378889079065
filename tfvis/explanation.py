"""The result of an explanation: maps plus what was explained, as numpy arrays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np


def _no_extras() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Explanation:
    """What `Explainer.explain` returns.

    Method-specific results live in `extras` and read as attributes: Integrated Gradients
    sets ``delta`` (``e.delta`` is ``e.extras["delta"]``), occlusion sets
    ``position_scores`` and ``top_class``. The object is frozen and `extras` is read-only;
    `with_extras` returns a copy with more.

    Attributes:
      maps: float32 ``(N, H, W)`` at input resolution, each normalised to [0, 1] (min-max;
        a constant map is all zeros).
      raw: the unnormalised values: ``(N, H, W)`` for layer and perturbation methods,
        ``(N, H, W, C)`` for pixel-space gradient methods.
      targets: the explained classes as int ``(N,)``; the ``(N, K)`` weights for soft
        targets; the callable for callable targets.
      scores: float32 ``(N,)``, the explained score of each sample (a logit by default).
      method: the registry name of the method.
      layer: the resolved layer path for layer methods, else None.
      extras: read-only mapping of method-specific results (name -> value), also readable
        as attributes.
    """

    maps: np.ndarray
    raw: np.ndarray
    targets: Any
    scores: np.ndarray
    method: str
    layer: str | None = None
    extras: Mapping[str, Any] = field(default_factory=_no_extras)

    def __post_init__(self) -> None:
        extras = dict(self.extras)
        for name in extras:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"extras names must be identifiers, got {name!r}")
            if name.startswith("_") or hasattr(type(self), name) or name in _FIELDS:
                raise ValueError(
                    f"extras name {name!r} would hide the Explanation attribute of that name; "
                    "choose another name"
                )
        # a private copy behind a read-only view: later changes to the caller's dict or
        # item assignment on e.extras cannot alter a frozen result
        object.__setattr__(self, "extras", MappingProxyType(extras))

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails; never recurse before `extras` exists
        # (copy / pickle look up dunders on a bare instance)
        if name.startswith("__"):
            raise AttributeError(name)
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        known = ", ".join(sorted(extras)) or "none"
        raise AttributeError(
            f"{type(self).__name__} of method {self.__dict__.get('method')!r} has no attribute "
            f"{name!r}; its extras are: {known}"
        )

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("extras", {})))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["extras"] = dict(state.get("extras", {}))  # mappingproxy does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "extras", MappingProxyType(dict(state.get("extras", {}))))

    def __len__(self) -> int:
        return len(self.maps)

    def with_extras(self, **items: Any) -> Explanation:
        """A copy with ``items`` added to (or replacing those of the same name in) `extras`.

        The copy shares the arrays of this one (neither is modified).

        Example:
          ``e2 = e.with_extras(delta=gaps)``; then ``e2.delta is gaps`` and ``e`` is unchanged.
        """
        return dataclasses.replace(self, extras={**self.extras, **items})

    def overlay(self, images: Any, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """Overlays each map on the matching image.

        Args:
          images: the explained images: a batch ``(N, H, W[, C])``, or one image
            ``(H, W[, C])`` when this explanation holds one map.
          alpha, cmap: see `tfvis.plotting.overlay`.

        Returns:
          uint8 RGB ``(N, H, W, 3)`` (a batch, also for one image).

        Raises:
          ValueError: the image count differs from the map count (the message gives the
            shapes).
        """
        from tfvis.plotting.images import image_batch, overlay  # display code, loaded on use

        batch = image_batch(images, len(self))
        if len(batch) != len(self):
            raise ValueError(
                f"got {len(batch)} image(s) (shape {np.shape(images)}) for {len(self)} maps "
                f"(shape {self.maps.shape}); pass the images that were explained"
            )
        return np.stack([overlay(i, m, alpha, cmap) for i, m in zip(batch, self.maps)])


_FIELDS = frozenset(f.name for f in dataclasses.fields(Explanation))
