"""Feature extraction (Beam): manifest -> log-mel patches in sharded TFRecords per split.

Output folder:
  <split>-NNNNN-of-MMMMM.tfrecord   one tf.train.Example per patch (beam_jobs.schema)
  stats.json         per split: per-band mean/std over all frames, frame count (train is used to normalise)
  counts.json        per split: read, written, rejected clips and patches; read = written + rejected
  dead_letters.jsonl one line per rejected clip: clip_id, path, split, reason
  params.json        the FeatureParams used;  vocabulary.json  class names in label-vector order
  separation.json    with separated views (beam_jobs.separate): the separator and its checkpoints

    python -m beam_jobs.extract --manifest_dir M --output_dir F [--feature_params P.json]
        [--num_shards N] [--runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import json
import os
import typing

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs import features, schema
from beam_jobs.manifest import (MANIFEST_FILE, VOCABULARY_FILE, Manifest, ManifestRow, join, read_manifest,
                                read_text, write_text)
from beam_jobs.params import FeatureParams
from beam_jobs.runner import pipeline_options

STATS_FILE = "stats.json"
COUNTS_FILE = "counts.json"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
PARAMS_FILE = "params.json"


class ClipFeatures(typing.NamedTuple):
    clip_id: str
    split: str
    logmel: np.ndarray  # (frames, bands) of the whole clip
    labels: np.ndarray  # (n_classes,) multi-hot
    channels: np.ndarray | None = None  # (checkpoints, M, frames, bands) separated views, when asked for


def decode_clip(path: str) -> tuple[np.ndarray, int]:
    """Decodes a clip on any Beam filesystem; local files are handed to libsndfile by path (no copy)."""
    if FileSystems.get_scheme(path) is None:
        if not os.path.isfile(path):
            raise features.ClipError(f"cannot read {path}: file not found")
        if os.path.getsize(path) == 0:
            raise features.ClipError(f"empty file (0 bytes): {path}")
        return features.decode_audio(path, path)
    try:
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            data = handle.read()
    except Exception as error:  # Beam wraps filesystem errors in several exception types
        raise features.ClipError(f"cannot read {path}: {error}") from error
    return features.decode_audio(data, path)


class ClipFeaturesFn(beam.DoFn):
    """Manifest row -> ClipFeatures; with a `separation` spec (beam_jobs.separate.SeparationSpec) also the
    log-mels of the clip's separated channels, the separators loaded once per worker."""

    def __init__(self, params: FeatureParams, class_index: dict[str, int], separation=None):
        self.params, self.class_index, self.separation = params, class_index, separation
        self.separated_log_mels = None

    def setup(self):
        if self.separation is not None:
            self.separated_log_mels = self.separation.load(self.params)

    def process(self, row: ManifestRow):
        waveform, rate = decode_clip(row.audio_path)
        labels = np.zeros(len(self.class_index), dtype=np.float32)
        labels[[self.class_index[label] for label in row.labels]] = 1.0
        waveform = features.prepare_waveform(waveform, rate, self.params)
        channels = self.separated_log_mels(waveform) if self.separated_log_mels else None
        yield ClipFeatures(row.clip_id, row.split, features.log_mel_spectrogram(waveform, self.params), labels,
                           channels)


def to_examples(clip: ClipFeatures, params: FeatureParams) -> typing.Iterator[bytes]:
    mask = np.ones_like(clip.labels)
    for index, patch in enumerate(features.examples_of(clip.logmel, params)):
        yield schema.encode_patch(clip.clip_id, index, patch, clip.labels, mask, clip.channels)


def dead_letter(failure) -> str:
    """JSON line for a clip that failed, from Beam's (row, (type, repr, traceback lines)) pair."""
    row, (_, _, traceback_lines) = failure
    reason = traceback_lines[-1].strip()  # "module.ErrorType: message"
    return json.dumps({"clip_id": row.clip_id, "path": row.audio_path, "split": row.split, "reason": reason},
                      sort_keys=True)


class SplitSummary(beam.CombineFn):
    """Per split: clips written, patches, and per-band frame count, sum and sum of squares -> mean/std."""

    def __init__(self, params: FeatureParams):
        self.params = params

    def create_accumulator(self):
        return 0, 0, 0, 0.0, 0.0

    def add_input(self, accumulator, logmel):
        clips, patches, frames, total, squares = accumulator
        logmel64 = logmel.astype(np.float64)
        return (clips + 1, patches + features.example_count(len(logmel), self.params), frames + len(logmel),
                total + logmel64.sum(axis=0), squares + np.einsum("ij,ij->j", logmel64, logmel64))

    def merge_accumulators(self, accumulators):
        return tuple(map(sum, zip(*accumulators)))

    def extract_output(self, accumulator):
        clips, patches, frames, total, squares = accumulator
        if not frames:
            return {"written": 0, "patches": 0}, {"frames": 0, "mean": [], "std": []}
        mean = total / frames
        std = np.sqrt(np.maximum(squares / frames - mean**2, 0.0))
        return {"written": clips, "patches": patches}, {"frames": frames, "mean": mean.tolist(), "std": std.tolist()}


def write_reports(grouped: list, output_dir: str) -> None:
    """counts.json and stats.json from [(split, {read: [n], rejected: [n], summary: [(counts, stats)]})]."""
    counts, stats = {}, {}
    empty = ({"written": 0, "patches": 0}, {"frames": 0, "mean": [], "std": []})
    for split, values in sorted(grouped):
        split_counts, split_stats = (values["summary"] or [empty])[0]
        counts[split] = {"read": sum(values["read"]), "rejected": sum(values["rejected"]), **split_counts}
        stats[split] = split_stats
    write_text(join(output_dir, COUNTS_FILE), json.dumps(counts, indent=1, sort_keys=True))
    write_text(join(output_dir, STATS_FILE), json.dumps(stats, indent=1, sort_keys=True))


def build_pipeline(p: beam.Pipeline, manifest_dir: str, manifest: Manifest, params: FeatureParams,
                   output_dir: str, num_shards: int, separation=None, splits: tuple[str, ...] = ()) -> None:
    splits = list(splits or manifest.splits)
    class_index = {label: i for i, label in enumerate(manifest.vocabulary)}
    rows = (p
            | "ReadManifest" >> beam.io.ReadFromText(join(manifest_dir, MANIFEST_FILE))
            | "ParseRows" >> beam.Map(ManifestRow.from_json)
            | "OfSplits" >> beam.Filter(lambda row: row.split in splits))
    clips, failed = (rows
                     | "Features" >> beam.ParDo(ClipFeaturesFn(params, class_index, separation))
                     .with_exception_handling())
    by_split = clips | "BySplit" >> beam.Partition(lambda clip, _: splits.index(clip.split), len(splits))
    for split, split_clips in zip(splits, by_split):
        _ = (split_clips
             | f"ToExamples[{split}]" >> beam.FlatMap(to_examples, params=params)
             | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                 join(output_dir, split), file_name_suffix=schema.SHARD_SUFFIX, num_shards=num_shards))

    read = rows | "SplitOfRead" >> beam.Map(lambda row: (row.split, 1)) | "CountRead" >> beam.CombinePerKey(sum)
    rejected = (failed
                | "SplitOfRejected" >> beam.Map(lambda failure: (failure[0].split, 1))
                | "CountRejected" >> beam.CombinePerKey(sum))
    summary = (clips
               | "SplitOfWritten" >> beam.Map(lambda clip: (clip.split, clip.logmel))
               | "Summarise" >> beam.CombinePerKey(SplitSummary(params)))
    _ = ({"read": read, "rejected": rejected, "summary": summary}
         | "GroupBySplit" >> beam.CoGroupByKey()
         | "AllSplits" >> beam.combiners.ToList()
         | "WriteReports" >> beam.Map(write_reports, output_dir=output_dir))
    _ = (failed
         | "DeadLetter" >> beam.Map(dead_letter)
         | "WriteDeadLetters" >> beam.io.WriteToText(join(output_dir, DEAD_LETTERS_FILE),
                                                     shard_name_template="", num_shards=1))


def check_counts(output_dir: str) -> dict:
    """Reads counts.json and verifies that every clip read was either written or rejected."""
    counts = json.loads(read_text(join(output_dir, COUNTS_FILE)))
    for split, split_counts in counts.items():
        if split_counts["read"] != split_counts["written"] + split_counts["rejected"]:
            raise RuntimeError(f"{output_dir}/{COUNTS_FILE}: split {split}: read {split_counts['read']} != "
                               f"written {split_counts['written']} + rejected {split_counts['rejected']}")
    return counts


def extract(manifest_dir: str, output_dir: str, params: FeatureParams = FeatureParams(), num_shards: int = 0,
            beam_args: list[str] | None = None, test_pipeline=None, separation=None,
            splits: tuple[str, ...] = ()) -> dict:
    """Runs the job on the manifest's `splits` (() = all); returns the per-split counts. The manifest (and
    the `separation` spec, which adds separated views: beam_jobs.separate) is validated before any work."""
    manifest = read_manifest(manifest_dir)
    unknown = sorted(set(splits) - set(manifest.splits))
    if unknown:
        raise ValueError(f"{manifest_dir}: no split {unknown} in the manifest (splits: {manifest.splits})")
    options = pipeline_options(beam_args or [])
    if separation is not None:
        write_text(join(output_dir, separation.FILE), separation.validate(params))
    write_text(join(output_dir, PARAMS_FILE), params.to_json())
    write_text(join(output_dir, VOCABULARY_FILE), json.dumps(list(manifest.vocabulary), indent=1))
    pipeline = test_pipeline or beam.Pipeline(options=options)
    with pipeline as p:
        build_pipeline(p, manifest_dir, manifest, params, output_dir, num_shards, separation, tuple(splits))
    return check_counts(output_dir)


def run(argv=None, test_pipeline=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--feature_params", default="", help="JSON file of FeatureParams (default: FSD50K)")
    parser.add_argument("--num_shards", type=int, default=0, help="shards per split; 0 lets the runner choose")
    args, beam_args = parser.parse_known_args(argv)
    params = FeatureParams.from_json(read_text(args.feature_params)) if args.feature_params else FeatureParams()
    return extract(args.manifest_dir, args.output_dir, params, args.num_shards, beam_args, test_pipeline)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
