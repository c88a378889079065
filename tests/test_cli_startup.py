"""The command starts fast: help, usage errors, missing or refused files and existing outputs
are answered without importing TensorFlow; when TensorFlow is needed, its C++ start-up log
lines are hidden unless --debug.

Each check runs in a fresh interpreter, since the test process has TensorFlow loaded already.
"""

import json
import os
import subprocess
import sys
import textwrap

NO_TENSORFLOW = textwrap.dedent("""
    import contextlib, io, json, sys
    from tfvis.cli import main

    root = sys.argv[1]
    calls = {
        "help": ["--help"],
        "no command": [],
        "unknown command": ["explode"],
        "demo help": ["demo", "--help"],
        "missing model": ["layers", root + "/missing.keras"],
        "corrupt model": ["layers", root + "/corrupt.keras"],
        "refused h5": ["layers", root + "/legacy.h5"],
        "refused remote": ["layers", "hf://someone/model"],
        "missing image": ["explain", root + "/corrupt.keras", root + "/missing.png"],
        "bad option": ["explain", root + "/corrupt.keras", root + "/x.png", "--option", "oops"],
        "existing output": ["explain", root + "/corrupt.keras", root + "/x.png", "--out", root],
        "non-empty demo folder": ["demo", "--out", root],
    }
    codes, errors = {}, {}
    for what, argv in calls.items():
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            codes[what] = main(argv)
        errors[what] = err.getvalue()
    print(json.dumps({"codes": codes, "errors": errors,
                      "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
""")


def test_answers_without_importing_tensorflow(tmp_path):
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "index.html").write_text("an earlier gallery")
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == {
        "help": 0, "no command": 2, "unknown command": 2, "demo help": 0,
        "missing model": 2, "corrupt model": 2, "refused h5": 3, "refused remote": 3,
        "missing image": 2, "bad option": 2, "existing output": 2, "non-empty demo folder": 2,
    }
    errors = report["errors"]
    assert "not a valid Keras archive" in errors["corrupt model"]
    assert "File not found" not in errors["corrupt model"]
    assert "--trust-model" in errors["refused remote"]
    assert "KEY=VALUE" in errors["bad option"]
    assert "--overwrite" in errors["non-empty demo folder"]
    assert not any("Traceback" in e for e in errors.values())
    assert report["tensorflow"] is False and report["keras"] is False


def test_tensorflow_start_up_lines_are_hidden_unless_debug(tmp_path):
    import keras

    inp = keras.Input((8, 8, 3))
    keras.Model(inp, keras.layers.Conv2D(2, 3, name="conv")(inp)).save(tmp_path / "m.keras")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    done = subprocess.run([sys.executable, "-m", "tfvis", "layers", str(tmp_path / "m.keras")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "conv" in done.stdout
    assert done.stderr == ""  # no "I0000 ... oneDNN", "cuda drivers", absl or cuInit lines
