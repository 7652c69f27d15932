"""Feature extraction (Beam): manifest -> log-mel patches in sharded TFRecords per split.

Writes a feature-set folder (beam_jobs.contracts.feature_set): shards, stats.json, counts.json,
dead_letters.jsonl, params.json, vocabulary.json (and separation.json with separated channels).

    python -m beam_jobs.extract --manifest_dir M --output_dir F [--feature_params P.json]
        [--num_shards N] [--runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import json
import typing

import apache_beam as beam
import numpy as np
import threadpoolctl

from beam_jobs.contracts import feature_set, features, schema
from beam_jobs.contracts.manifest import Manifest, ManifestRow, ReadManifestRows, read_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.split_reports import READ, REJECTED, WRITTEN, ClipSummary
from beam_jobs.contracts.storage import join, read_json, read_text, write_text
from beam_jobs.runner import pipeline_options, runs_in_parallel, settle_worker_process


class ClipFeatures(typing.NamedTuple):
    clip_id: str
    split: str
    logmel: np.ndarray  # (frames, bands) of the whole clip
    labels: np.ndarray  # (n_classes,) multi-hot
    channels: np.ndarray | None = None  # (checkpoints, M, frames, bands) separated channels, when asked for
    silent: bool = False  # digital silence: written, and counted per split


class ClipFeaturesFn(beam.DoFn):
    """Manifest row -> ClipFeatures; with a `separation` spec (beam_jobs.separate.SeparationSpec) also the
    log-mels of the clip's separated channels, the separators loaded once per worker."""

    def __init__(self, params: FeatureParams, class_index: dict[str, int], separation=None):
        self.params, self.class_index, self.separation = params, class_index, separation
        self.separated_log_mels, self.thread_limits = None, None

    def setup(self):
        # One BLAS thread: on these small matrices (frames x 513 @ 513 x 96) a second OpenBLAS thread doubled
        # the CPU time for the same wall time; the job's parallelism is its workers.
        self.thread_limits = threadpoolctl.threadpool_limits(1, user_api="blas")
        settle_worker_process()
        if self.separation is not None:
            self.separated_log_mels = self.separation.load(self.params)

    def teardown(self):
        if self.thread_limits is not None:
            self.thread_limits.restore_original_limits()

    def process(self, row: ManifestRow):
        labels = np.zeros(len(self.class_index), dtype=np.float32)
        labels[[self.class_index[label] for label in row.labels]] = 1.0
        channels = None
        if self.separated_log_mels:  # the separators need the whole waveform
            waveform = features.prepare_waveform(*features.decode_clip(row.audio_path), self.params)
            logmel, silent = features.log_mel_spectrogram(waveform, self.params), features.is_silent(waveform)
            channels = features.check_finite(self.separated_log_mels(waveform),
                                             f"the separated channels of {row.audio_path}")
        else:
            logmel, silent = features.clip_log_mel(row.audio_path, self.params)
        yield ClipFeatures(row.clip_id, row.split, features.check_finite(logmel, row.audio_path), labels, channels,
                           silent)


def split_examples(clip: ClipFeatures, params: FeatureParams) -> typing.Iterator[tuple[str, bytes]]:
    """(split, serialized example) for each of the clip's patches (or the whole clip: params.whole_clips)."""
    mask = np.ones_like(clip.labels)
    for index, patch in enumerate(features.examples_of(clip.logmel, params)):
        yield clip.split, schema.encode_patch(clip.clip_id, index, patch, clip.labels, mask, clip.channels)


def dead_letter(failure) -> str:
    """JSON line for a clip that failed, from Beam's (row, (type, repr, traceback lines)) pair."""
    row, (_, _, traceback_lines) = failure
    reason = traceback_lines[-1].strip()  # "module.ErrorType: message"
    return json.dumps({"clip_id": row.clip_id, "path": row.audio_path, "split": row.split, "reason": reason},
                      sort_keys=True)


SUMMARY_BLOCK_FRAMES = 1 << 16


def clip_summary(clip: ClipFeatures, params: FeatureParams) -> ClipSummary:
    total = squares = np.zeros(clip.logmel.shape[1])
    for start in range(0, len(clip.logmel), SUMMARY_BLOCK_FRAMES):  # float64 a block at a time: long clips
        block = clip.logmel[start:start + SUMMARY_BLOCK_FRAMES].astype(np.float64)
        total, squares = total + block.sum(axis=0), squares + np.einsum("ij,ij->j", block, block)
    return ClipSummary(clip.clip_id, clip.split, len(clip.logmel), features.example_count(len(clip.logmel), params),
                       bool(clip.silent), tuple(total.tolist()), tuple(squares.tolist()))


class ComputeClipFeatures(beam.PTransform):
    """Manifest rows -> (ClipFeatures, failures); a failure is (row, (type, repr, traceback lines))."""

    def __init__(self, params: FeatureParams, class_index: dict[str, int], separation=None):
        super().__init__()
        self.params, self.class_index, self.separation = params, class_index, separation

    def expand(self, rows):
        return rows | beam.ParDo(ClipFeaturesFn(self.params, self.class_index, self.separation)
                                 ).with_exception_handling()


def build_pipeline(p: beam.Pipeline, manifest_dir: str, manifest: Manifest, params: FeatureParams,
                   output_dir: str, num_shards: int, separation=None, splits: tuple[str, ...] = (),
                   spread: bool = False) -> None:
    splits = list(splits or manifest.splits)
    class_index = {label: i for i, label in enumerate(manifest.vocabulary)}
    rows = p | "ReadRows" >> ReadManifestRows(manifest_dir, splits, spread)
    clips, failed = rows | "Features" >> ComputeClipFeatures(params, class_index, separation)
    _ = ({"examples": clips | "Examples" >> beam.FlatMap(split_examples, params=params),
          READ: rows, WRITTEN: clips | "ClipSummaries" >> beam.Map(clip_summary, params=params),
          REJECTED: failed | "RejectedRows" >> beam.Map(lambda failure: failure[0]),
          "dead_letters": failed | "DeadLetter" >> beam.Map(dead_letter)}
         | "FeatureSet" >> feature_set.WriteFeatureSet(output_dir, splits, num_shards))


def extract(manifest_dir: str, output_dir: str, params: FeatureParams = FeatureParams(), num_shards: int = 0,
            beam_args: list[str] | None = None, separation=None, splits: tuple[str, ...] = ()) -> dict:
    """Runs the job on the manifest's `splits` (() = all); returns the per-split counts. The manifest (and
    the `separation` spec, which adds separated channels: beam_jobs.separate) is validated before any work."""
    manifest = read_manifest(manifest_dir)
    unknown = sorted(set(splits) - set(manifest.splits))
    if unknown:
        raise ValueError(f"{manifest_dir}: no split {unknown} in the manifest (splits: {manifest.splits})")
    splits = tuple(splits or manifest.splits)
    options = pipeline_options(beam_args or [], items=sum(row.split in splits for row in manifest.rows))
    separation_text = separation.validate(params) if separation is not None else None
    with publishing(output_dir, "extract") as publication:
        staging = publication.staging
        if separation_text is not None:
            write_text(join(staging, feature_set.SEPARATION_FILE), separation_text)
        feature_set.write_description(staging, params, manifest.vocabulary)
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, manifest_dir, manifest, params, staging, num_shards, separation, splits,
                           spread=runs_in_parallel(options))
        given = {split: sum(row.split == split for row in manifest.rows) for split in splits}
        counts = feature_set.check_counts(read_json(join(staging, feature_set.COUNTS_FILE)), output_dir, given)
        check_no_empty_split(counts, staging, output_dir)
        publication.summary.update(counts=counts, params=json.loads(params.to_json()), manifest=manifest_dir)
    return counts


def check_no_empty_split(counts: dict, staging: str, output_dir: str) -> None:
    """A split whose every clip was rejected fails the job, with the first reasons from the dead letters."""
    empty = [split for split, split_counts in counts.items() if split_counts["read"] and not split_counts["written"]]
    if empty:
        reasons = [json.loads(line)["reason"] for line in
                   read_text(join(staging, feature_set.DEAD_LETTERS_FILE)).splitlines()[:3]]
        raise RuntimeError(f"{output_dir}: every clip of split(s) {empty} was rejected, e.g. {reasons}")


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--feature_params", default="", help="JSON file of FeatureParams (default: FSD50K)")
    parser.add_argument("--num_shards", type=int, default=0, help="shards per split; 0 lets the runner choose")
    args, beam_args = parser.parse_known_args(argv)
    params = FeatureParams.from_json(read_text(args.feature_params)) if args.feature_params else FeatureParams()
    return extract(args.manifest_dir, args.output_dir, params, args.num_shards, beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
