"""Where callbacks put what they log: TensorBoard, PNG files, NPZ arrays.

Writers are created lazily on the first write and closed by `close` (a callback calls it in
``on_train_end``), so building a callback opens nothing and leaks nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfvis.gallery import safe_name, save_png, write_atomic


class Writers:
    """TensorBoard / PNG / NPZ outputs; any of the three folders may be None (not written).

    Args:
      log_dir: TensorBoard log folder (``tf.summary`` image summaries).
      png_dir: folder of PNG files, one subfolder per step.
      npz_dir: folder of NPZ files of raw arrays, one per step.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        png_dir: str | os.PathLike | None = None,
        npz_dir: str | os.PathLike | None = None,
    ) -> None:
        if log_dir is None and png_dir is None and npz_dir is None:
            raise ValueError("give at least one of log_dir, png_dir, npz_dir")
        self.log_dir = None if log_dir is None else str(log_dir)
        self.png_dir = None if png_dir is None else Path(png_dir)
        self.npz_dir = None if npz_dir is None else Path(npz_dir)
        self._summary = None

    def images(self, tag: str, images: np.ndarray, step: int) -> None:
        """Writes uint8 RGB ``(N, H, W, 3)`` images under ``tag`` at ``step`` (all N kept)."""
        images = np.asarray(images, dtype=np.uint8)
        if self.log_dir is not None:
            if self._summary is None:
                self._summary = tf.summary.create_file_writer(self.log_dir)
            with self._summary.as_default():
                # max_outputs defaults to 3, which would silently drop the other images
                tf.summary.image(tag, images, step=step, max_outputs=len(images))
            self._summary.flush()
        if self.png_dir is not None:
            folder = self.png_dir / f"step_{step:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                save_png(folder / f"{safe_name(tag)}_{i:03d}.png", image)

    def arrays(self, name: str, step: int, **arrays: np.ndarray) -> None:
        """Writes ``arrays`` to ``npz_dir/<name>_step_<step>.npz``."""
        if self.npz_dir is None:
            return
        self.npz_dir.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        write_atomic(self.npz_dir / f"{safe_name(name)}_step_{step:06d}.npz", buffer.getvalue())

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer (a later write opens it again)."""
        if self._summary is not None:
            self._summary.close()
            self._summary = None
