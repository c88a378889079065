"""Write galleries of images x methods as PNG files plus an ``index.html`` (no server needed).

Files are written atomically (temporary file + rename) and stay inside the output folder:
names are sanitised, and existing files are kept unless ``overwrite`` is set. OpenCV (the PNG
encoder) is imported when a PNG is written, not when this module is imported.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``-``, ``_``, ``.``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._")
    return name[:80] or "item"


def write_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Writes ``data`` to ``path`` via a temporary file and a rename; never through a symlink."""
    if path.is_symlink():
        raise FileExistsError(f"refusing to write through the symbolic link {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png(path: str | os.PathLike, rgb: np.ndarray, overwrite: bool = True) -> Path:
    """Saves a uint8 RGB (or grey) image as PNG, atomically."""
    import cv2  # deferred: only encoding needs OpenCV

    image = np.asarray(rgb)
    if image.dtype != np.uint8:
        raise TypeError("save_png expects uint8 pixels; use tfvis.plotting.to_uint8_rgb")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    path = Path(path)
    write_atomic(path, buf.tobytes(), overwrite)
    return path


@dataclass
class Gallery:
    """A table of images: one row per input, one column per view (input, methods...).

    Build it with `add_row`, then `write(out_dir)`.
    """

    title: str
    columns: list[str]
    notes: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[tuple[np.ndarray, str]]]] = field(default_factory=list)
    #: Sections shown below the table: ``(title, notes, [(file name, PNG bytes, caption)])``.
    sections: list[tuple[str, list[str], list[tuple[str, bytes, str]]]] = field(
        default_factory=list)

    #: The folder (under the output folder) that section figures are written to.
    SECTION_FOLDER = "inside"

    def add_section(self, title: str, figures: list[tuple[str, bytes, str]],
                    notes: list[str] | None = None) -> None:
        """Adds a section below the table: a heading, notes, and PNG figures (``(file name,
        PNG bytes, caption)``; names are sanitised and written under ``inside/``)."""
        self.sections.append((title, list(notes or []), list(figures)))

    def add_row(self, label: str, cells: list[tuple[np.ndarray, str]]) -> None:
        """Adds a row of ``(uint8 RGB image, caption)`` cells, one per column."""
        if len(cells) != len(self.columns):
            raise ValueError(f"a row needs {len(self.columns)} cells, got {len(cells)}")
        self.rows.append((label, cells))

    def write(self, out_dir: str | os.PathLike, overwrite: bool = True, scale: int = 3) -> Path:
        """Writes ``images/*.png`` and ``index.html`` under ``out_dir``; returns the HTML path.

        Args:
          out_dir: the folder (created if missing).
          overwrite: replace files that exist (False raises FileExistsError).
          scale: nearest-neighbour enlargement of small images for viewing.
        """
        root = Path(out_dir)
        images = root / "images"
        if images.is_symlink():
            raise FileExistsError(f"{images} is a symbolic link; refusing to write through it")
        images.mkdir(parents=True, exist_ok=True)
        e = html.escape
        head = "".join(f"<th>{e(c)}</th>" for c in self.columns)
        body = []
        for r, (label, cells) in enumerate(self.rows):
            tds = []
            for c, (column, (image, caption)) in enumerate(zip(self.columns, cells)):
                name = f"{r:03d}_{c:02d}_{safe_name(column)}.png"
                big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
                save_png(images / name, big, overwrite)
                tds.append(
                    f'<td><img src="images/{e(name)}" alt="{e(column)}"><br>'
                    f"<small>{e(caption)}</small></td>"
                )
            body.append(f"<tr><th>{e(label)}</th>{''.join(tds)}</tr>")
        extra = []
        if self.sections:
            folder = root / self.SECTION_FOLDER
            if folder.is_symlink():
                raise FileExistsError(f"{folder} is a symbolic link; refusing to write "
                                      "through it")
            folder.mkdir(exist_ok=True)
        for title, texts, figures in self.sections:
            parts = [f"<h2>{e(title)}</h2>"]
            parts += [f"<p>{e(t)}</p>" for t in texts]
            for name, png, caption in figures:
                name = safe_name(name)
                write_atomic(folder / name, png, overwrite)
                parts.append(f'<figure><img src="{self.SECTION_FOLDER}/{e(name)}" '
                             f'alt="{e(caption)}"><figcaption>{e(caption)}</figcaption>'
                             "</figure>")
            extra.append("<section>" + "".join(parts) + "</section>")
        notes = "".join(f"<li>{e(n)}</li>" for n in self.notes)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{e(self.title)}</title><style>"
            "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
            "td,th{padding:4px;text-align:center;vertical-align:top;border:1px solid #ddd}"
            "</style></head><body>"
            f"<h1>{e(self.title)}</h1><ul>{notes}</ul>"
            f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>{''.join(extra)}"
            "</body></html>"
        )
        index = root / "index.html"
        write_atomic(index, page.encode("utf-8"), overwrite)
        return index
