"""The feature-set folder: the one module that names, writes, reads and checks it.

  <split>-NNNNN-of-MMMMM.tfrecord   one tf.train.Example per patch or clip (beam_jobs.contracts.schema)
  stats.json         per split: per-band mean/std over all frames and the frame count; the train split's
                     normalise every model input (`normalisation`)
  counts.json        per split: read, written, rejected clips and patches; read = written + rejected
  dead_letters.jsonl one line per rejected clip: clip_id, path, split, reason
  params.json        the FeatureParams used;  vocabulary.json  class names in label-vector order (the
                     manifest's)
  separation.json    separated views only: the separator and its checkpoint steps, in channel order
  clip_sums-*.jsonl  extraction and views only: per written clip, its split, frames, patches, silence and
                     per-band float64 sums and sums of squares (their exact bits, base64;
                     beam_jobs.extract.ClipSummary), from which a view of the feature set (beam_jobs.view)
                     computes its own statistics

Jobs that rewrite one split (relabelling, pruning) write its shards with the same `WriteShards` and copy
the rest with `copy_feature_set` (without the clip sums: they no longer describe the set).
"""
from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np

from beam_jobs.contracts import schema
from beam_jobs.contracts.manifest import VOCABULARY_FILE
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.publish import MARKER_FILE, check_complete
from beam_jobs.contracts.storage import join, list_files, read_json, read_text, write_json, write_text

STATS_FILE = "stats.json"
COUNTS_FILE = "counts.json"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
PARAMS_FILE = "params.json"
MODEL_PARAMS_FILE = "feature_params.json"  # the FeatureParams a model folder (or its export) was trained on
SEPARATION_FILE = "separation.json"
CLIP_SUMS_FILE = "clip_sums"
CLIP_SUMS_SUFFIX = ".jsonl"
SHARD_SUFFIX = ".tfrecord"
NORMALISATION_SPLIT = "train"
STD_FLOOR = 1e-3  # bands that are constant over the train set are not blown up by normalisation
WHAT = "a feature set (written by beam_jobs.extract, relabel or prune)"


def shard_pattern(features_dir: str, split: str) -> str:
    """Glob of one split's shards."""
    return f"{features_dir.rstrip('/')}/{split}-*{SHARD_SUFFIX}"


class WriteShards(beam.PTransform):
    """Serialized examples -> one split's TFRecord shards (`num_shards` 0: the runner chooses)."""

    def __init__(self, output_dir: str, split: str, num_shards: int = 0):
        super().__init__()
        self.output_dir, self.split, self.num_shards = output_dir, split, num_shards

    def expand(self, examples):
        return examples | beam.io.WriteToTFRecord(join(self.output_dir, self.split), file_name_suffix=SHARD_SUFFIX,
                                                  num_shards=self.num_shards)


def clip_sums_pattern(features_dir: str) -> str:
    return f"{features_dir.rstrip('/')}/{CLIP_SUMS_FILE}-*{CLIP_SUMS_SUFFIX}"


class WriteClipSums(beam.PTransform):
    """JSON lines of ClipSummary -> the clip-sums shards."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, lines):
        return lines | beam.io.WriteToText(join(self.output_dir, CLIP_SUMS_FILE), file_name_suffix=CLIP_SUMS_SUFFIX)


class ReadPatchesByClip(beam.PTransform):
    """(clip id, serialized example) pairs of one split, for jobs that regroup patches by clip."""

    def __init__(self, features_dir: str, split: str):
        super().__init__()
        self.features_dir, self.split = features_dir, split

    def expand(self, pipeline):
        return (pipeline
                | "ReadShards" >> beam.io.ReadFromTFRecord(shard_pattern(self.features_dir, self.split))
                | "KeyByClip" >> beam.Map(lambda serialized: (schema.decode_patch(serialized)[schema.CLIP_ID],
                                                              serialized)))


def write_description(output_dir: str, params: FeatureParams, vocabulary) -> None:
    write_text(join(output_dir, PARAMS_FILE), params.to_json())
    write_json(join(output_dir, VOCABULARY_FILE), list(vocabulary))


def write_reports(output_dir: str, counts: dict, stats: dict | None = None) -> None:
    write_json(join(output_dir, COUNTS_FILE), counts, sort_keys=True)
    if stats is not None:
        write_json(join(output_dir, STATS_FILE), stats, sort_keys=True)


def check_counts(counts: dict, where: str) -> dict:
    """Every clip read was either written or rejected, per split."""
    for split, split_counts in counts.items():
        if split_counts["read"] != split_counts["written"] + split_counts["rejected"]:
            raise RuntimeError(f"{where}/{COUNTS_FILE}: split {split}: read {split_counts['read']} != "
                               f"written {split_counts['written']} + rejected {split_counts['rejected']}")
    return counts


def read_counts(features_dir: str) -> dict:
    check_complete(features_dir, WHAT)
    return check_counts(read_json(join(features_dir, COUNTS_FILE), WHAT), features_dir)


def read_vocabulary(folder: str) -> list[str]:
    return read_json(join(folder, VOCABULARY_FILE), "a feature set, manifest, model or score table")


def read_model_feature_params(folder: str) -> FeatureParams:
    """The feature parameters of a model folder or an export folder."""
    return FeatureParams.from_json(read_text(join(folder, MODEL_PARAMS_FILE)))


def normalisation(stats: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per band of the normalisation split in a stats.json; std floored at STD_FLOOR."""
    split = stats.get(NORMALISATION_SPLIT, {})
    if not split.get("frames"):
        raise ValueError(f"{where}/{STATS_FILE}: no '{NORMALISATION_SPLIT}' frames to normalise with")
    return (np.asarray(split["mean"], dtype=np.float32),
            np.maximum(np.asarray(split["std"], dtype=np.float32), np.float32(STD_FLOOR)))


def read_normalisation(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """The normalisation of a feature set, or of a model folder (which keeps its feature set's stats.json)."""
    return normalisation(read_json(join(folder, STATS_FILE), WHAT), folder)


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """What a feature-set folder holds, read from its small JSON files."""

    directory: str
    params: FeatureParams
    vocabulary: tuple[str, ...]
    counts: dict
    mean: np.ndarray  # per band, from the normalisation split
    std: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.vocabulary)

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.params.patch_frames, self.params.n_mels

    def patches(self, split: str) -> int:
        return int(self.counts.get(split, {}).get("patches", 0))

    def clips(self, split: str) -> int:
        return int(self.counts.get(split, {}).get("written", 0))

    def files(self, split: str) -> list[str]:
        files = list_files(shard_pattern(self.directory, split))
        if not files or self.patches(split) == 0:
            raise ValueError(f"{self.directory}: no patches for split {split!r} "
                             f"(splits with patches: {[s for s in self.counts if self.patches(s)]})")
        return files


def load_feature_set(directory: str) -> FeatureSet:
    check_complete(directory, WHAT)
    mean, std = read_normalisation(directory)
    params = FeatureParams.from_json(read_text(join(directory, PARAMS_FILE)))
    return FeatureSet(directory=directory, params=params, vocabulary=tuple(read_vocabulary(directory)),
                      counts=read_json(join(directory, COUNTS_FILE), WHAT), mean=mean, std=std)


def copy_feature_set(features_dir: str, output_dir: str, rewritten_split: str, counts: dict) -> None:
    """Copies a feature set's other splits and metadata beside a rewritten split; writes `counts`.

    The normalisation statistics stay those of the original train split: models trained on the new set
    (students, training continued after pruning) see their inputs scaled as the model they start from did.
    """
    from apache_beam.io.filesystems import FileSystems

    for path in list_files(join(features_dir, "*")):
        name = path.rsplit("/", 1)[-1]
        if name.startswith((f"{rewritten_split}-", f"{CLIP_SUMS_FILE}-")) or name in (COUNTS_FILE, MARKER_FILE):
            continue
        FileSystems.copy([path], [join(output_dir, name)])
    write_reports(output_dir, check_counts(counts, output_dir))


def read_separation(features_dir: str) -> dict:
    """separation.json of a separated-views feature set."""
    return read_json(join(features_dir, SEPARATION_FILE), "the output of beam_jobs.separate")
