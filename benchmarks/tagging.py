"""Tagging throughput: the command-line tagger and the Beam tagging job, against the feature functions alone.

    python benchmarks/tagging.py [--clips 200] [--width 1.0] [--workdir DIR]

On the same synthetic clips (mixed sample rates and channel counts), with a VGG-like classifier of `--width`
(untrained: the cost of inference does not depend on the weights), one CPU thread for TensorFlow, prints
audio-seconds per CPU-second (x real time per core) for
  - features only: decode, resample and log-mel with the numpy feature functions (no model), the reference;
  - keras_models.tag (an export: decode, resample, then the SavedModel's front end, model and aggregation);
  - beam_jobs.tag (DirectRunner, one worker, RunInference with the same export), timed inside its process;
and each rate's ratio to the reference.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)


def prepare(workdir: str, clips: int, width: float) -> tuple[str, list[str]]:
    """(an export folder, the clips' audio paths)."""
    from beam_jobs import ingest, synthetic
    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.extract import extract
    from beam_jobs.contracts import model_folder
    from keras_models import export
    from keras_models.architectures import build_model
    from beam_jobs.contracts.feature_set import load_feature_set

    root, manifest_dir = os.path.join(workdir, "data"), os.path.join(workdir, "manifest")
    features_dir, model_dir = os.path.join(workdir, "features"), os.path.join(workdir, "model")
    synthetic.generate(root, clips, seed=2)
    ingest.ingest(root, manifest_dir)
    extract(manifest_dir, features_dir)
    features = load_feature_set(features_dir)
    model_folder.copy_feature_set_files(features_dir, model_dir)
    build_model("vgg_like", features.input_shape, features.n_classes, width).save(
        model_folder.path(model_dir, model_folder.MODEL_FILE))
    export.export(model_dir, os.path.join(workdir, "exported"))
    return os.path.join(workdir, "exported"), [row.audio_path for row in read_manifest(manifest_dir).rows]


def features_only(paths: list[str]) -> float:
    from beam_jobs.contracts.features import clip_log_mel
    from beam_jobs.contracts.params import FeatureParams

    params, start = FeatureParams(), time.process_time()
    for path in paths:
        clip_log_mel(path, params)
    return time.process_time() - start


def command_line(export_dir: str, paths: list[str]) -> float:
    from keras_models.tag import tag

    with contextlib.redirect_stdout(io.StringIO()):  # its per-file lines
        tag(export_dir, paths[:2])  # warm-up: loading and tracing the SavedModel
        start = time.process_time()
        tag(export_dir, paths, progress=False)
        return time.process_time() - start


JOB = """
import sys, time, json
sys.path.insert(0, {repository!r})
from beam_jobs.tag import tag_audio
start = time.process_time()
tag_audio({export!r}, {output!r}, {paths!r}, beam_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"])
print(json.dumps(time.process_time() - start))
"""


def beam_job(export_dir: str, paths: list[str], workdir: str) -> float:
    code = JOB.format(repository=REPOSITORY, export=export_dir, output=os.path.join(workdir, "tagged"), paths=paths)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"})
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    import soundfile
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    workdir = args.workdir or tempfile.mkdtemp(prefix="tagging_bench_")
    export_dir, paths = prepare(workdir, args.clips, args.width)
    seconds = sum(soundfile.info(path).duration for path in paths)
    reference = features_only(paths)
    rates = {"features only (reference)": reference, "keras_models.tag (CLI)": command_line(export_dir, paths),
             "beam_jobs.tag (DirectRunner, 1 worker)": beam_job(export_dir, paths, workdir)}
    print(f"{len(paths)} clips, {seconds:.0f} s of audio; VGG-like width {args.width}; one TensorFlow thread")
    print(f"{'':42} {'x real time per core':>22} {'ratio to reference':>20}")
    for name, cpu_seconds in rates.items():
        print(f"{name:42} {seconds / cpu_seconds:22.0f} {reference / cpu_seconds:20.2f}")


if __name__ == "__main__":
    main()
