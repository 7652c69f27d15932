"""Re-split feature sets (Beam): an extracted feature set re-split or subset, without decoding a clip again.

A split manifest (select_train_set, split_dev_set: the dataset's clips with new train/val assignments, or
a subset of them) and the feature set extracted once from the whole manifest give a new feature-set folder
holding exactly what extracting the split manifest afresh would write: each selected clip's records byte
for byte under its new split, the counts, the dead letters of clips that extraction rejected, and each
split's statistics, summed exactly again from the clips' sums (feature_set.CLIP_SUMS_FILE), so a train
subset is normalised by its own clips. Shards' record order may differ.

    python -m beam_jobs.resplit --features_dir F --split_manifest_dir M --output_dir V [--runner ...]
"""
from __future__ import annotations

import argparse
import json

import apache_beam as beam
import numpy as np

from beam_jobs.contracts import feature_set, schema
from beam_jobs.contracts.manifest import ReadManifestRows, read_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.publish import check_complete, publishing
from beam_jobs.contracts.split_reports import READ, REJECTED, WRITTEN, ClipSummary
from beam_jobs.contracts.storage import join, list_files, read_json, read_text, write_text
from beam_jobs.runner import pipeline_options, runs_in_parallel

def source_clips(features_dir: str) -> tuple[set[str], dict[str, dict]]:
    """The clip ids the feature set wrote, and its dead letters by clip id."""
    if not list_files(feature_set.clip_sums_pattern(features_dir)):
        raise ValueError(f"{features_dir} has no per-clip sums ({feature_set.CLIP_SUMS_FILE}-*): only a feature set "
                         f"written by beam_jobs.extract (or a re-split of one) can be re-split")
    written = {json.loads(line)["clip_id"] for path in list_files(feature_set.clip_sums_pattern(features_dir))
               for line in read_text(path).splitlines() if line}
    dead_letters = read_text(join(features_dir, feature_set.DEAD_LETTERS_FILE)).splitlines()
    return written, {letter["clip_id"]: letter for letter in map(json.loads, filter(None, dead_letters))}


class SelectRecords(beam.DoFn):
    """Serialized example of the source -> (new split, example) for the selected clips (decoded once for
    its clip and labels); a record whose labels are not its clip's labels in the split manifest fails the job."""

    def __init__(self, labels_of: dict[str, tuple[str, np.ndarray]]):
        self.labels_of = labels_of

    def process(self, serialized: bytes):
        example = schema.decode_patch(serialized)
        clip_id = example[schema.CLIP_ID]
        if clip_id in self.labels_of:
            split, labels = self.labels_of[clip_id]
            if not np.array_equal(example[schema.LABELS], labels):
                raise ValueError(f"clip {clip_id}: the feature set's labels differ from the split manifest's")
            yield split, serialized


def resplit_features(features_dir: str, split_manifest_dir: str, output_dir: str,
                     beam_args: list[str] | None = None) -> dict:
    """Writes the re-split feature set; returns its per-split counts. Every clip of the split manifest must be in the
    feature set (written or rejected) with the same vocabulary: checked before any work."""
    check_complete(features_dir, feature_set.WHAT)
    manifest = read_manifest(split_manifest_dir)
    vocabulary = feature_set.read_vocabulary(features_dir)
    if list(manifest.vocabulary) != vocabulary:
        raise ValueError(f"{split_manifest_dir}: its vocabulary differs from that of {features_dir}")
    written, dead_letters = source_clips(features_dir)
    missing = [row.clip_id for row in manifest.rows if row.clip_id not in written and row.clip_id not in dead_letters]
    if missing:
        raise ValueError(f"{len(missing)} clips of {split_manifest_dir} are not in {features_dir}, e.g. {missing[:3]}")
    index = {label: i for i, label in enumerate(vocabulary)}
    labels_of = {}
    for row in manifest.rows:
        labels = np.zeros(len(vocabulary), dtype=np.float32)
        labels[[index[label] for label in row.labels]] = 1.0
        labels_of[row.clip_id] = (row.split, labels)
    split_of = {clip_id: split for clip_id, (split, _) in labels_of.items()}
    rejected = [row for row in manifest.rows if row.clip_id in dead_letters]
    letters = [json.dumps({**dead_letters[row.clip_id], "split": row.split}, sort_keys=True) for row in rejected]
    source_splits = sorted(read_json(join(features_dir, feature_set.COUNTS_FILE), feature_set.WHAT))
    splits = list(manifest.splits)
    options = pipeline_options(beam_args or [], items=len(manifest.rows))
    with publishing(output_dir, "resplit") as publication:
        staging = publication.staging
        params = FeatureParams.from_json(read_text(join(features_dir, feature_set.PARAMS_FILE)))
        feature_set.write_description(staging, params, vocabulary)
        if list_files(join(features_dir, feature_set.SEPARATION_FILE)):
            write_text(join(staging, feature_set.SEPARATION_FILE),
                       read_text(join(features_dir, feature_set.SEPARATION_FILE)))
        with beam.Pipeline(options=options) as p:
            # One read of every split's shards: a Flatten of one read per split made the local runner hold
            # all the records in memory (1.5 GB more at 2,000 clips); ReadAll streams them.
            records = (p | "ShardPatterns" >> beam.Create([feature_set.shard_pattern(features_dir, split)
                                                           for split in source_splits])
                       | "ReadRecords" >> beam.io.ReadAllFromTFRecord()
                       | "Select" >> beam.ParDo(SelectRecords(labels_of)))
            summaries = (p | "ReadClipSums" >> beam.io.ReadFromText(feature_set.clip_sums_pattern(features_dir))
                         | "ParseClipSums" >> beam.Map(ClipSummary.from_json)
                         | "Selected" >> beam.Filter(lambda clip: clip.clip_id in split_of)
                         | "NewSplit" >> beam.Map(lambda clip: clip._replace(split=split_of[clip.clip_id])))
            _ = ({"examples": records, WRITTEN: summaries,
                  READ: p | "Rows" >> ReadManifestRows(split_manifest_dir, splits, runs_in_parallel(options)),
                  REJECTED: p | "Rejected" >> beam.Create(rejected),
                  "dead_letters": p | "DeadLetterLines" >> beam.Create(letters)}
                 | "FeatureSet" >> feature_set.WriteFeatureSet(staging, splits))
        counts = feature_set.check_counts(read_json(join(staging, feature_set.COUNTS_FILE)), output_dir)
        publication.summary.update(counts=counts, features=features_dir, split_manifest=split_manifest_dir)
    return counts


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features_dir", required=True)
    parser.add_argument("--split_manifest_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    args, beam_args = parser.parse_known_args(argv)
    return resplit_features(args.features_dir, args.split_manifest_dir, args.output_dir, beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
