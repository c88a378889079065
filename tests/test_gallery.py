"""Gallery files: sanitised names, no overwrite unless asked, no symlink following, escaping."""

import os

import cv2
import numpy as np
import pytest

from tfvis.gallery import Gallery, safe_name, save_png


def test_safe_name_strips_paths_and_odd_characters():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("Grad-CAM++") == "Grad-CAM"
    assert safe_name("...") == "item"
    assert "/" not in safe_name("a/b\\c") and len(safe_name("x" * 500)) <= 80


def test_save_png_roundtrip_and_refusals(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # red
    path = save_png(tmp_path / "a.png", rgb)
    back = cv2.imread(str(path))
    assert back.shape == (4, 5, 3) and back[0, 0, 2] == 255  # stored as BGR by OpenCV
    with pytest.raises(FileExistsError):
        save_png(path, rgb, overwrite=False)
    with pytest.raises(TypeError):
        save_png(tmp_path / "b.png", rgb.astype(np.float32))
    target = tmp_path / "target.png"
    target.write_bytes(b"keep")
    os.symlink(target, tmp_path / "link.png")
    with pytest.raises(FileExistsError, match="symbolic"):
        save_png(tmp_path / "link.png", rgb)
    assert target.read_bytes() == b"keep"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_gallery_writes_every_cell_with_unique_names_and_escapes_text(tmp_path):
    g = Gallery("t<script>", ["input", "Grad-CAM", "Grad-CAM++"], notes=["a & b"])
    cell = np.zeros((2, 2, 3), np.uint8)
    g.add_row("#0", [(cell, "x"), (cell, "<b>"), (cell, "y")])
    index = g.write(tmp_path)
    page = index.read_text()
    assert "<script>" not in page and "&lt;b&gt;" in page and "a &amp; b" in page
    files = sorted(os.listdir(tmp_path / "images"))
    assert len(files) == 3 and len(set(files)) == 3
    for f in files:
        assert f"images/{f}" in page
    with pytest.raises(FileExistsError):
        g.write(tmp_path, overwrite=False)
    with pytest.raises(ValueError, match="cells"):
        g.add_row("#1", [(cell, "only one")])
