"""Training input against training steps: can tf.data feed the model?

    python benchmarks/input_pipeline.py [--clips 600] [--batch_size 64] [--width 1.0] [--workdir DIR]

On a synthetic FSD50K-format feature set, times (wall clock, one process, after a warm-up)
  - the training input alone: `keras_models.input.patch_dataset` shuffled, batched, parsed and normalised
    as training reads it (examples per second), and
  - training steps of the VGG-like model of `--width` at `--batch_size` on batches already in memory
    (examples per second),
and prints both, their ratio and the target (input >= 10x the step rate).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)


def feature_set(workdir: str, clips: int) -> str:
    from beam_jobs import ingest, synthetic
    from beam_jobs.extract import extract

    root, manifest, features = (os.path.join(workdir, name) for name in ("data", "manifest", "features"))
    if not os.path.exists(os.path.join(features, "counts.json")):
        synthetic.generate(root, clips, seed=4)
        ingest.ingest(root, manifest)
        extract(manifest, features)
    return features


def input_rate(features_dir: str, batch_size: int, epochs: int = 3) -> float:
    from beam_jobs.contracts.feature_set import load_feature_set
    from keras_models.input import patch_dataset, supervised

    dataset = supervised(patch_dataset(load_feature_set(features_dir), "train", batch_size, shuffle=True))
    for _ in dataset:  # warm-up: tracing, file opening
        pass
    examples, started = 0, time.perf_counter()
    for _ in range(epochs):
        for logmel, _ in dataset:
            examples += int(logmel.shape[0])
    return examples / (time.perf_counter() - started)


def step_rate(features_dir: str, batch_size: int, width: float, steps: int = 20) -> float:
    import numpy as np
    import tensorflow as tf

    from beam_jobs.contracts.feature_set import load_feature_set
    from keras_models.architectures import build_model

    features = load_feature_set(features_dir)
    model = build_model("vgg_like", features.input_shape, features.n_classes, width)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch_size, *features.input_shape)).astype(np.float32))
    y = tf.constant((rng.uniform(size=(batch_size, features.n_classes)) < 0.1).astype(np.float32))
    for _ in range(3):  # warm-up: tracing and the first steps
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    features_dir = feature_set(args.workdir or tempfile.mkdtemp(prefix="input_bench_"), args.clips)
    reading = input_rate(features_dir, args.batch_size)
    training = step_rate(features_dir, args.batch_size, args.width)
    ratio = reading / training
    print(f"training input (tf.data, batch {args.batch_size}): {reading:,.0f} examples/s")
    print(f"training steps (VGG-like width {args.width}, batch {args.batch_size}): {training:,.0f} examples/s "
          f"({training / args.batch_size:.2f} steps/s)")
    print(f"target: input >= 10x the step rate: {ratio:.0f}x, {'met' if ratio >= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
