"""Computation apart from display: explainers run with matplotlib and OpenCV unimportable, and
the plotting package imports them only when it draws.

Each check runs in a fresh interpreter: ``sys.modules`` of the test process already holds
everything. TensorFlow imports Keras, which tries matplotlib and OpenCV itself (and tolerates
ImportError), so "not imported" can only be checked in a process without TensorFlow, and
"not needed" by blocking the two libraries outright.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

BLOCK = textwrap.dedent("""
    import sys

    class BlockDisplayLibraries:
        '''Makes matplotlib and cv2 unimportable (as if not installed).'''

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "cv2"):
                raise ImportError(f"{name} is blocked by test_import_isolation")
            return None

    blocker = BlockDisplayLibraries()
    sys.meta_path.insert(0, blocker)
""")

DISPLAY = ("matplotlib", "cv2")


def run(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


EXPLAIN_WITHOUT_DISPLAY = BLOCK + textwrap.dedent("""
    import json
    import keras
    import numpy as np
    import tfvis

    def seeded(seed):
        return keras.initializers.GlorotUniform(seed=seed)

    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(1))(inp)
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(2))(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=seeded(3))(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")

    explainers = {
        "GradCAM": tfvis.GradCAM(model, verbose=0),
        "Saliency": tfvis.Saliency(model, verbose=0),
        "SmoothGrad": tfvis.SmoothGrad(model, num_samples=2, verbose=0),
        "IntegratedGradients": tfvis.IntegratedGradients(model, steps=4, verbose=0),
        "Occlusion": tfvis.Occlusion(model, patch_size=8, stride=8, fill="blur", verbose=0),
        "RISE": tfvis.RISE(model, num_masks=16, grid_size=4, seed=0, verbose=0),
    }
    for name in tfvis.methods():
        cls = tfvis.REGISTRY[name]
        explainers[name] = tfvis.get_explainer(name, model, **cls.quick_options)
    results = {}
    for name, explainer in explainers.items():
        e = explainer(x)
        results[name] = [list(e.maps.shape), bool(np.all(np.isfinite(e.maps))),
                         bool(np.all(np.isfinite(e.raw))), float(e.maps.max())]
    print(json.dumps({
        "results": results,
        "methods": list(tfvis.methods()),
        "display": sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "cv2"}),
        "plotting": sorted(m for m in sys.modules if m.startswith("tfvis.plotting")),
    }))
""")


@pytest.fixture(scope="module")
def blocked_report():
    return run(EXPLAIN_WITHOUT_DISPLAY)


def test_every_method_runs_without_matplotlib_and_opencv(blocked_report):
    report = blocked_report
    results = report["results"]
    named = {"GradCAM", "Saliency", "SmoothGrad", "IntegratedGradients", "Occlusion", "RISE"}
    assert named | set(report["methods"]) == set(results)
    assert len(report["methods"]) >= 10
    for name, (shape, finite_maps, finite_raw, peak) in results.items():
        assert shape == [2, 16, 16], name
        assert finite_maps and finite_raw, name
        assert 0.0 <= peak <= 1.0, name
    assert report["display"] == []


def test_explainers_do_not_load_the_plotting_package(blocked_report):
    """Explainers need `tfvis.engine.imageops`, never display code (base.py imports it from
    there, not from `tfvis.plotting`)."""
    assert blocked_report["plotting"] == []


def test_plotting_imports_matplotlib_and_opencv_on_use():
    code = textwrap.dedent("""
        import json, sys
        import numpy as np

        def loaded():
            return sorted({m.split(".")[0] for m in sys.modules}
                          & {"matplotlib", "cv2", "tensorflow"})

        import tfvis
        import tfvis.plotting
        import tfvis.gallery
        from tfvis.engine.imageops import normalize
        from tfvis.explanation import Explanation
        normalize(np.arange(6.0).reshape(2, 3))
        before = loaded()
        fig = tfvis.plotting.grid(np.zeros((8, 8, 3)), {"a": np.eye(8)})
        after = loaded()
        print(json.dumps({"before": before, "after": after, "figure": type(fig).__name__}))
    """)
    report = run(code)
    assert report["before"] == []  # nor TensorFlow: plotting and normalize are numpy only
    assert set(DISPLAY) <= set(report["after"]) and report["figure"] == "Figure"


def test_plotting_imports_even_when_display_libraries_are_missing():
    """Importing works without them; drawing then fails with ImportError naming the library."""
    code = BLOCK + textwrap.dedent("""
        import json
        import numpy as np
        import tfvis.plotting
        from tfvis.plotting import normalize, grid, overlay
        out = normalize(np.array([[0.0, 2.0]])).tolist()
        errors = []
        for draw in (lambda: grid(np.zeros((4, 4, 3)), {"a": np.eye(4)}),
                     lambda: overlay(np.zeros((4, 4)), np.eye(4))):
            try:
                draw()
            except ImportError as err:
                errors.append(str(err))
        print(json.dumps({"normalized": out, "errors": errors}))
    """)
    report = run(code)
    assert report["normalized"] == [[0.0, 1.0]]
    assert len(report["errors"]) == 2
    assert "matplotlib" in report["errors"][0] and "cv2" in report["errors"][1]
