"""Training input against training steps: can tf.data feed the model?

    python benchmarks/input_pipeline.py [--clips 600] [--batch_size 64] [--width 1.0] [--workdir DIR]
        [--precisions float32,mixed_bfloat16,mixed_float16] [--steps 20] [--steps_only]

On a synthetic FSD50K-format feature set, times (wall clock, one process, after a warm-up)
  - the training input alone: `keras_models.model_input.patch_dataset` shuffled, batched, parsed and normalised
    as training reads it (examples per second; each epoch starts by filling the shuffle buffer, which on
    this small set is the whole epoch: the steady-state rate is printed beside it), and
  - training steps of the VGG-like model of `--width` at `--batch_size` on batches already in memory
    (examples per second), once per Keras dtype policy in `--precisions`,
and prints both, their ratio and the target (input >= 10x the step rate).

`--steps_only` times the training steps alone, on FSD50K's patch shape and 200 classes, with whatever Keras
backend is configured (KERAS_BACKEND): for an accelerator machine that has no TensorFlow or Beam, e.g.
`KERAS_BACKEND=jax python benchmarks/input_pipeline.py --steps_only --precisions float32,mixed_bfloat16`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

FSD50K_CLASSES = 200
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


def input_rate(features_dir: str, batch_size: int, epochs: int = 3, repeat: int = 1) -> float:
    """Examples per second of the training input; `repeat` > 1 reads that many epochs through one
    iterator, so the shuffle buffer's fill at an epoch's start overlaps the previous epoch's tail."""
    from beam_jobs.contracts.feature_set import load_feature_set
    from keras_models.model_input import patch_dataset, supervised

    dataset = supervised(patch_dataset(load_feature_set(features_dir), "train", batch_size, shuffle=True))
    dataset = dataset.repeat(repeat)
    for _ in dataset:  # warm-up: tracing, file opening
        pass
    examples, started = 0, time.perf_counter()
    for _ in range(epochs):
        for logmel, _ in dataset:
            examples += int(logmel.shape[0])
    return examples / (time.perf_counter() - started)


def step_rate(input_shape: tuple[int, int], n_classes: int, batch_size: int, width: float, precision: str,
              steps: int = 20) -> float:
    """Examples per second of `train_on_batch` under the Keras dtype policy `precision`."""
    import keras
    import numpy as np

    from keras_models.architectures import build_model

    keras.config.set_dtype_policy(precision)
    try:
        model = build_model("vgg_like", input_shape, n_classes, width)
        model.compile(optimizer="adam", loss="binary_crossentropy")
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = (rng.uniform(size=(batch_size, n_classes)) < 0.1).astype(np.float32)
    for _ in range(3):  # warm-up: tracing and the first steps
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    if not np.isfinite(loss):
        raise FloatingPointError(f"{precision}: training loss {loss}")
    return steps * batch_size / (time.perf_counter() - started)


def describe_backend() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax
        return f"jax {jax.__version__} on {jax.devices()[0].device_kind}"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return f"tensorflow {tf.__version__} on {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}"
    return keras.backend.backend()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--precisions", default="float32",
                        help="comma-separated Keras dtype policies to time the steps under")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per precision")
    parser.add_argument("--steps_only", action="store_true",
                        help="time the training steps alone, on FSD50K's patch shape and 200 classes")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if args.steps_only:
        from beam_jobs.contracts.params import FeatureParams

        params, reading = FeatureParams(), None
        input_shape, n_classes = (params.patch_frames, params.n_mels), FSD50K_CLASSES
    else:
        from beam_jobs.contracts.feature_set import load_feature_set

        features_dir = feature_set(args.workdir or tempfile.mkdtemp(prefix="input_bench_"), args.clips)
        features = load_feature_set(features_dir)
        input_shape, n_classes = features.input_shape, features.n_classes
        reading = input_rate(features_dir, args.batch_size)
        print(f"training input (tf.data, batch {args.batch_size}): {reading:,.0f} examples/s; "
              f"{input_rate(features_dir, args.batch_size, epochs=1, repeat=10):,.0f} examples/s in steady state "
              f"(10 epochs through one iterator: each epoch's shuffle-buffer fill overlapped)")
    print(f"backend: {describe_backend()}")
    for precision in precisions:
        training = step_rate(input_shape, n_classes, args.batch_size, args.width, precision, args.steps)
        print(f"training steps (VGG-like width {args.width}, batch {args.batch_size}, {precision}): "
              f"{training:,.0f} examples/s ({training / args.batch_size:.2f} steps/s)")
        if reading is not None:
            ratio = reading / training
            print(f"  target: input >= 10x the step rate: {ratio:.0f}x, {'met' if ratio >= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
