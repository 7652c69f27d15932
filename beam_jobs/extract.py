"""Feature extraction (Beam): manifest -> log-mel patches in sharded TFRecords per split.

Output folder:
  <split>-NNNNN-of-MMMMM.tfrecord   one tf.train.Example per patch (beam_jobs.schema)
  stats.json         per split: per-band mean/std over all frames, frame count (train is used to normalise)
  counts.json        per split: read, written, rejected clips and patches; read = written + rejected
  dead_letters.jsonl one line per rejected clip: clip_id, path, split, reason
  params.json        the FeatureParams used;  vocabulary.json  class names in label-vector order

    python -m beam_jobs.extract --manifest_dir M --output_dir F [--feature_params P.json]
        [--num_shards N] [--runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import json
import typing

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs import features, schema
from beam_jobs.manifest import MANIFEST_FILE, Manifest, ManifestRow, join, read_manifest, read_text, write_text
from beam_jobs.params import FeatureParams
from beam_jobs.runner import pipeline_options

STATS_FILE = "stats.json"
COUNTS_FILE = "counts.json"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
PARAMS_FILE = "params.json"
VOCABULARY_FILE = "vocabulary.json"


class ClipFeatures(typing.NamedTuple):
    clip_id: str
    split: str
    logmel: np.ndarray  # (frames, bands) of the whole clip
    labels: np.ndarray  # (n_classes,) multi-hot


def read_audio_bytes(path: str) -> bytes:
    try:
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            return handle.read()
    except Exception as error:  # Beam wraps filesystem errors in several exception types
        raise features.ClipError(f"cannot read {path}: {error}") from error


def clip_features(row: ManifestRow, params: FeatureParams, class_index: dict[str, int]) -> ClipFeatures:
    waveform, rate = features.decode_audio(read_audio_bytes(row.audio_path), row.audio_path)
    labels = np.zeros(len(class_index), dtype=np.float32)
    labels[[class_index[label] for label in row.labels]] = 1.0
    return ClipFeatures(row.clip_id, row.split, features.waveform_to_log_mel(waveform, rate, params), labels)


def to_examples(clip: ClipFeatures, params: FeatureParams) -> typing.Iterator[bytes]:
    mask = np.ones_like(clip.labels)
    for index, patch in enumerate(features.cut_patches(clip.logmel, params)):
        yield schema.encode_patch(clip.clip_id, index, patch, clip.labels, mask)


def dead_letter(failure) -> str:
    """JSON line for a clip that failed, from Beam's (row, (type, repr, traceback lines)) pair."""
    row, (_, _, traceback_lines) = failure
    reason = traceback_lines[-1].strip()  # "module.ErrorType: message"
    return json.dumps({"clip_id": row.clip_id, "path": row.audio_path, "split": row.split, "reason": reason},
                      sort_keys=True)


class BandStats(beam.CombineFn):
    """Per-band frame count, sum and sum of squares (float64) -> mean and std."""

    def create_accumulator(self):
        return 0, 0.0, 0.0

    def add_input(self, accumulator, logmel):
        count, total, squares = accumulator
        logmel = logmel.astype(np.float64)
        return count + len(logmel), total + logmel.sum(axis=0), squares + (logmel**2).sum(axis=0)

    def merge_accumulators(self, accumulators):
        count, total, squares = 0, 0.0, 0.0
        for c, t, s in accumulators:
            count, total, squares = count + c, total + t, squares + s
        return count, total, squares

    def extract_output(self, accumulator):
        count, total, squares = accumulator
        if count == 0:
            return {"frames": 0, "mean": [], "std": []}
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return {"frames": int(count), "mean": mean.tolist(), "std": std.tolist()}


def _merge_dicts(dicts) -> dict:
    merged = {}
    for item in dicts:
        for key, value in item.items():
            merged.setdefault(key, {}).update(value)
    return merged


@beam.ptransform_fn
def ExtractSplit(rows: beam.PCollection, split: str, params: FeatureParams, vocabulary: tuple[str, ...],
                 output_dir: str, num_shards: int):
    """Features of one split: writes its shards; returns (dead letters, {split: counts}, {split: stats})."""
    class_index = {label: i for i, label in enumerate(vocabulary)}
    clips, failed = (rows
                     | f"Features[{split}]" >> beam.Map(clip_features, params=params, class_index=class_index)
                     .with_exception_handling())
    examples = clips | f"ToExamples[{split}]" >> beam.FlatMap(to_examples, params=params)
    _ = examples | f"Write[{split}]" >> beam.io.WriteToTFRecord(
        join(output_dir, split), file_name_suffix=schema.SHARD_SUFFIX, num_shards=num_shards)

    def count(pcoll, name):
        return pcoll | f"Count{name}[{split}]" >> beam.combiners.Count.Globally()

    counts = (
        [count(rows, "Read") | f"KeyRead[{split}]" >> beam.Map(lambda n: {split: {"read": n}}),
         count(clips, "Written") | f"KeyWritten[{split}]" >> beam.Map(lambda n: {split: {"written": n}}),
         count(failed, "Rejected") | f"KeyRejected[{split}]" >> beam.Map(lambda n: {split: {"rejected": n}}),
         count(examples, "Patches") | f"KeyPatches[{split}]" >> beam.Map(lambda n: {split: {"patches": n}})]
        | f"FlattenCounts[{split}]" >> beam.Flatten())
    stats = (clips
             | f"Logmel[{split}]" >> beam.Map(lambda clip: clip.logmel)
             | f"BandStats[{split}]" >> beam.CombineGlobally(BandStats())
             | f"KeyStats[{split}]" >> beam.Map(lambda s: {split: s}))
    letters = failed | f"DeadLetter[{split}]" >> beam.Map(dead_letter)
    return letters, counts, stats


def _write_json(pcoll: beam.PCollection, output_dir: str, name: str):
    return (pcoll
            | f"Merge[{name}]" >> beam.combiners.ToList()
            | f"ToJson[{name}]" >> beam.Map(lambda dicts: json.dumps(_merge_dicts(dicts), indent=1, sort_keys=True))
            | f"Write[{name}]" >> beam.io.WriteToText(join(output_dir, name), shard_name_template="", num_shards=1))


def build_pipeline(p: beam.Pipeline, manifest_dir: str, manifest: Manifest, params: FeatureParams,
                   output_dir: str, num_shards: int) -> None:
    rows = (p
            | "ReadManifest" >> beam.io.ReadFromText(join(manifest_dir, MANIFEST_FILE))
            | "ParseRows" >> beam.Map(ManifestRow.from_json))
    splits = manifest.splits
    by_split = rows | "BySplit" >> beam.Partition(lambda row, _: splits.index(row.split), len(splits))
    letters, counts, stats = [], [], []
    for split, split_rows in zip(splits, by_split):
        split_letters, split_counts, split_stats = split_rows | f"Extract[{split}]" >> ExtractSplit(
            split, params, manifest.vocabulary, output_dir, num_shards)
        letters.append(split_letters)
        counts.append(split_counts)
        stats.append(split_stats)
    _ = (letters | "AllDeadLetters" >> beam.Flatten()
         | "WriteDeadLetters" >> beam.io.WriteToText(join(output_dir, DEAD_LETTERS_FILE),
                                                     shard_name_template="", num_shards=1))
    _write_json(counts | "AllCounts" >> beam.Flatten(), output_dir, COUNTS_FILE)
    _write_json(stats | "AllStats" >> beam.Flatten(), output_dir, STATS_FILE)


def check_counts(output_dir: str) -> dict:
    """Reads counts.json and verifies that every clip read was either written or rejected."""
    counts = json.loads(read_text(join(output_dir, COUNTS_FILE)))
    for split, split_counts in counts.items():
        for key in ("read", "written", "rejected", "patches"):
            split_counts.setdefault(key, 0)
        if split_counts["read"] != split_counts["written"] + split_counts["rejected"]:
            raise RuntimeError(f"{output_dir}/{COUNTS_FILE}: split {split}: read {split_counts['read']} != "
                               f"written {split_counts['written']} + rejected {split_counts['rejected']}")
    return counts


def extract(manifest_dir: str, output_dir: str, params: FeatureParams = FeatureParams(), num_shards: int = 0,
            beam_args: list[str] | None = None, test_pipeline=None) -> dict:
    """Runs the job; returns the per-split counts. The manifest is validated before any work starts."""
    manifest = read_manifest(manifest_dir)
    options = pipeline_options(beam_args or [])
    write_text(join(output_dir, PARAMS_FILE), params.to_json())
    write_text(join(output_dir, VOCABULARY_FILE), json.dumps(list(manifest.vocabulary), indent=1))
    pipeline = test_pipeline or beam.Pipeline(options=options)
    with pipeline as p:
        build_pipeline(p, manifest_dir, manifest, params, output_dir, num_shards)
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
