"""CPU-time ratio of `explain` to its floor for occlusion, RISE and saliency on the demo CNN.

CPU time is less sensitive than wall time to other work on a shared machine. For an A/B of two
versions, run it once per checkout: ``PYTHONPATH=/path/to/other/checkout python
scripts/cpu_ratio.py``. Occlusion: patch 16, stride 8, fill 0, 128 images per call (floor: 13
batched forwards of 128); RISE: 100 masks (floor: 25 forwards of 128); saliency: the batch of
32 (floor: forward + backward to the input), 20 calls per timing. 7 rounds, medians, the order
of contender and floor alternating.
"""
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"]="2"
import numpy as np, tensorflow as tf
import tfvis
from tfvis.demo import build_model
m = build_model((64,64,3), seed=0)
x = np.random.default_rng(0).random((32,64,64,3)).astype("float32")
occ = tfvis.Occlusion(m, patch_size=16, stride=8, fill=0.0, batch_size=128, verbose=0)
rise = tfvis.RISE(m, num_masks=100, seed=0, batch_size=128, verbose=0)
gc = tfvis.GradCAM(m, verbose=0)
sal = tfvis.Saliency(m, verbose=0)
fwd = tf.function(lambda t: m(t, training=False), autograph=False)
layer = m.get_layer("conv3b")
onehot = tf.one_hot(np.arange(32) % 4, 4)
@tf.function(autograph=False)
def to_input(t):
    with tf.GradientTape() as tape:
        tape.watch(t); s = tf.reduce_sum(m(t, training=False) * onehot)
    return tape.gradient(s, t)
b = tf.constant(np.random.default_rng(1).random((128,64,64,3)).astype("float32"))
xt = tf.constant(x)
cases = {
  "occlusion": (lambda: occ(x).maps, lambda: [fwd(b) for _ in range(13)][-1].numpy()),
  "rise": (lambda: rise(x).maps, lambda: [fwd(b) for _ in range(25)][-1].numpy()),
  "saliency": (lambda: sal(x).maps, lambda: to_input(xt).numpy()),
}
for f, g in cases.values(): f(); g()
def cpu(f, k):
    s = time.process_time()
    for _ in range(k): f()
    return time.process_time() - s
out = {}
for r in range(7):
    for name, (f, g) in cases.items():
        k = 20 if name == "saliency" else 1
        a, b_ = (cpu(f, k), cpu(g, k)) if r % 2 else tuple(reversed((cpu(g, k), cpu(f, k))))
        out.setdefault(name, []).append(a / b_)
print({k: round(float(np.median(v)), 3) for k, v in out.items()})
