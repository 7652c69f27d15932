"""The feature-set folder: the one module that names, writes, reads and checks it.

  <split>-NNNNN-of-MMMMM.tfrecord   one tf.train.Example per patch or clip (beam_jobs.contracts.schema)
  stats.json         per split: per-band mean/std over all frames and the frame count; the train split's
                     normalise every model input (`normalisation`)
  counts.json        per split: read, written, rejected clips and patches; read = written + rejected
  dead_letters.jsonl one line per rejected clip: clip_id, path, split, reason
  params.json        the FeatureParams used;  vocabulary.json  class names in label-vector order (the
                     manifest's)
  separation.json    separated channels only: the separator and its checkpoint steps, in channel order
  clip_sums-*.jsonl  extraction and views only: per written clip, its split, frames, patches, silence and
                     per-band float64 sums and sums of squares (their exact bits, base64;
                     beam_jobs.contracts.split_reports.ClipSummary), from which a re-split of the feature
                     set (beam_jobs.resplit) computes its own statistics

Every job writes a feature set's files through one sink, `WriteFeatureFiles`: extraction and views its shards,
clip sums and dead letters (`WriteFeatureSet`, with counts.json and stats.json); jobs that rewrite one split
(relabelling, pruning) that split's shards only, and copy the rest with `copy_feature_set` (without the clip
sums: they no longer describe the set).
"""
from __future__ import annotations

import dataclasses
import os
import struct
import uuid
import zlib

import apache_beam as beam
import google_crc32c
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from beam_jobs.contracts import schema
from beam_jobs.contracts.manifest import VOCABULARY_FILE
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.publish import MARKER_FILE, check_complete
from beam_jobs.contracts.split_reports import WRITTEN, SummariseSplits
from beam_jobs.contracts.storage import join, list_files, read_json, read_text, write_bytes, write_json, write_text

STATS_FILE = "stats.json"
COUNTS_FILE = "counts.json"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
PARAMS_FILE = "params.json"
SEPARATION_FILE = "separation.json"
CLIP_SUMS_FILE = "clip_sums"
CLIP_SUMS_SUFFIX = ".jsonl"
SHARD_SUFFIX = ".tfrecord"
UNCOMPRESSED = CompressionTypes.UNCOMPRESSED
LINE_FILES = (CLIP_SUMS_FILE, DEAD_LETTERS_FILE)  # text files of a feature set written with its shards
NORMALISATION_SPLIT = "train"
STD_FLOOR = 1e-3  # bands that are constant over the train set are not blown up by normalisation
WHAT = "a feature set (written by beam_jobs.extract, relabel or prune)"


def shard_pattern(features_dir: str, split: str) -> str:
    """Glob of one split's shards."""
    return f"{features_dir.rstrip('/')}/{split}-*{SHARD_SUFFIX}"


class _WriteBundleFiles(beam.DoFn):
    """(file, payload) -> the payloads in one temporary file per file and bundle; yields (file, shard, path)
    for each, shard None (the runner's bundles make the shards)."""

    def __init__(self, temp_dir: str):
        self.temp_dir = temp_dir

    def start_bundle(self):
        self.open_files = {}

    def process(self, element):
        name, payload = element
        if name not in self.open_files:
            path = join(self.temp_dir, f"{name}.{uuid.uuid4().hex}")
            self.open_files[name] = path, FileSystems.create(path, compression_type=UNCOMPRESSED)
        _append(self.open_files[name][1], name, payload)

    def finish_bundle(self):
        for name, (path, handle) in self.open_files.items():
            handle.close()
            yield GlobalWindows.windowed_value((name, None, path))
        self.open_files = {}


def _write_shard(element, temp_dir: str):
    """((file, shard), payloads) -> (file, shard, temporary path) of a file holding them."""
    (name, shard), payloads = element
    path = join(temp_dir, f"{name}.{shard}.{uuid.uuid4().hex}")
    with FileSystems.create(path, compression_type=UNCOMPRESSED) as handle:
        for payload in payloads:
            _append(handle, name, payload)
    return name, shard, path


def _append(handle, name: str, payload) -> None:
    if name in LINE_FILES:
        handle.write(payload.encode("utf-8") + b"\n")
    else:
        handle.write(tfrecord_record(payload))


def tfrecord_record(payload: bytes) -> bytes:
    """TFRecord framing, what TensorFlow and Beam's WriteToTFRecord write: the length (uint64, little-endian),
    its masked CRC-32C, the payload, its masked CRC-32C."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", _masked_crc32c(length)) + payload + struct.pack("<I", _masked_crc32c(payload))


def _masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _final_name(name: str, shard: int, total: int) -> str:
    if name == DEAD_LETTERS_FILE:
        return name
    return f"{name}-{shard:05d}-of-{total:05d}{CLIP_SUMS_SUFFIX if name == CLIP_SUMS_FILE else SHARD_SUFFIX}"


def publish_files(written: list, output_dir: str, temp_dir: str, names: tuple[str, ...], num_shards: int) -> None:
    """Moves the temporary files to their final names: every split's shards numbered -SSSSS-of-NNNNN (num_shards
    of them where fixed), at least one (empty) file per name, the dead letters in one file. A step retried
    after it moved some files finds them in place."""
    by_name = {name: [] for name in names}
    for name, shard, path in written:
        by_name[name].append((shard, path))
    for name, files in by_name.items():
        fixed = num_shards and name not in LINE_FILES
        if name == DEAD_LETTERS_FILE and len(files) > 1:
            target, sources = join(output_dir, name), [path for _, path in sorted(files)]
            if all(map(FileSystems.exists, sources)):
                write_bytes(target, b"".join(map(_read_bytes, sources)))
                FileSystems.delete(sources)
            elif not FileSystems.exists(target):
                raise FileNotFoundError(f"{sources}: written {name} files are gone before they were published")
            continue
        total = num_shards if fixed else max(1, len(files))
        paths = dict(files) if fixed else dict(enumerate(path for _, path in sorted(files)))
        for shard in range(total):
            target = join(output_dir, _final_name(name, shard, total))
            if shard not in paths:
                write_bytes(target, b"")
            elif FileSystems.exists(paths[shard]):
                FileSystems.rename([paths[shard]], [target])
            elif not FileSystems.exists(target):
                raise FileNotFoundError(f"{paths[shard]}: a written {name} file is gone before it was published")
    # What is left are the files of bundles that failed and were retried.
    leftovers = [match.path for match in FileSystems.match([join(temp_dir, "*")])[0].metadata_list]
    if FileSystems.get_scheme(temp_dir) is None and os.path.isdir(temp_dir):
        leftovers = [temp_dir]
    if leftovers:
        FileSystems.delete(leftovers)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=UNCOMPRESSED) as handle:
        return handle.read()


class WriteFeatureFiles(beam.PTransform):
    """PCollections of (file, payload) pairs -> a feature set's shards, clip sums and dead letters, in one sink
    (each Beam sink adds stages and ~0.1 CPU s to a job). `file` is a split (payload: a serialized example,
    into the split's TFRecord shards), CLIP_SUMS_FILE or DEAD_LETTERS_FILE (a text line). Each input's bundles
    write their own temporary files (the inputs are not flattened: a Flatten of large collections from
    different stages is held in memory by the local runner), which a last step moves to their final names;
    `num_shards` > 0 fixes the number of shards per split instead (the examples are grouped by shard first).
    `line_files`: the text files this set has (jobs that rewrite one split's shards write none)."""

    def __init__(self, output_dir: str, splits, num_shards: int = 0, line_files: tuple[str, ...] = LINE_FILES):
        super().__init__()
        self.output_dir, self.names, self.num_shards = output_dir, (*splits, *line_files), num_shards

    def expand(self, inputs):
        output_dir, names, num_shards = self.output_dir, self.names, self.num_shards
        temp_dir = join(output_dir, f".files-{uuid.uuid4().hex}")
        written, sharded = [], []
        for index, files in enumerate(inputs):
            if num_shards:
                files, records = files | f"FixedShards{index}" >> beam.Partition(
                    lambda element, _: int(element[0] not in LINE_FILES), 2)
                sharded.append(records)
            written.append(files | f"WriteBundles{index}" >> beam.ParDo(_WriteBundleFiles(temp_dir)))
        if sharded:
            written.append(tuple(sharded) | "Records" >> beam.Flatten()
                           | "ShardOf" >> beam.Map(lambda element: ((element[0], zlib.crc32(element[1]) % num_shards),
                                                                    element[1]))
                           | "GroupShards" >> beam.GroupByKey()
                           | "WriteShards" >> beam.Map(_write_shard, temp_dir=temp_dir))
        return (tuple(written)
                | "Written" >> beam.Flatten()
                | "AllWritten" >> beam.combiners.ToList()
                | "Publish" >> beam.Map(publish_files, output_dir=output_dir, temp_dir=temp_dir, names=names,
                                        num_shards=num_shards))


class WriteFeatureSet(beam.PTransform):
    """{examples: (split, serialized example), read: rows, written: ClipSummary, rejected: rows, dead_letters:
    JSON lines} -> a feature set's shards, clip sums and dead letters (one sink: WriteFeatureFiles),
    counts.json and stats.json."""

    def __init__(self, output_dir: str, splits, num_shards: int = 0):
        super().__init__()
        self.output_dir, self.splits, self.num_shards = output_dir, tuple(splits), num_shards

    def expand(self, inputs):
        output_dir = self.output_dir
        _ = ((inputs["examples"],
              inputs[WRITTEN] | "ClipSumLines" >> beam.Map(lambda clip: (CLIP_SUMS_FILE, clip.to_json())),
              inputs["dead_letters"] | "DeadLetterLines" >> beam.Map(
                  lambda line: (DEAD_LETTERS_FILE, line)))
             | "WriteFiles" >> WriteFeatureFiles(output_dir, self.splits, self.num_shards))
        return (inputs
                | "SummariseSplits" >> SummariseSplits()
                | "WriteReports" >> beam.MapTuple(
                    lambda counts, stats: write_reports(output_dir, counts, stats)))


def clip_sums_pattern(features_dir: str) -> str:
    return f"{features_dir.rstrip('/')}/{CLIP_SUMS_FILE}-*{CLIP_SUMS_SUFFIX}"


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


def count_records(pattern: str) -> int:
    """How many TFRecords the files matching `pattern` hold, from the records' length prefixes alone (each
    payload is skipped, not read): what a job checks its written shards by before it publishes."""
    total = 0
    for path in list_files(pattern):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            while header := handle.read(12):  # length (8 bytes, little-endian) and its CRC
                if len(header) < 12:
                    raise RuntimeError(f"{path}: a truncated record after {total} records")
                handle.seek(struct.unpack("<Q", header[:8])[0] + 4, 1)  # payload and its CRC
                total += 1
    return total


def check_written(where: str, what: str, written: int, expected: int) -> None:
    """A job's written count against what its input says it should be: a runner that lost elements fails
    the job here, before it publishes."""
    if written != expected:
        raise RuntimeError(f"{where}: {written} {what} written where the input holds {expected}: the runner lost "
                           f"elements, nothing is published")


def write_description(output_dir: str, params: FeatureParams, vocabulary) -> None:
    write_text(join(output_dir, PARAMS_FILE), params.to_json())
    write_json(join(output_dir, VOCABULARY_FILE), list(vocabulary))


def write_reports(output_dir: str, counts: dict, stats: dict | None = None) -> None:
    write_json(join(output_dir, COUNTS_FILE), counts, sort_keys=True)
    if stats is not None:
        write_json(join(output_dir, STATS_FILE), stats, sort_keys=True)


def check_counts(counts: dict, where: str, expected_reads: dict[str, int] | None = None) -> dict:
    """Every clip read was either written or rejected, per split; with `expected_reads` ({split: clips the job
    was given}), every clip given was read: a runner that loses elements (or a whole split) fails here."""
    for split, clips in (expected_reads or {}).items():
        read = counts.get(split, {}).get("read", 0)
        if read != clips:
            raise RuntimeError(f"{where}/{COUNTS_FILE}: split {split}: the job was given {clips} clips and counted "
                               f"{read} read: the runner lost elements, nothing is published")
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


def normalisation(stats: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per band of the normalisation split in a stats.json; std floored at STD_FLOOR."""
    split = stats.get(NORMALISATION_SPLIT, {})
    if not split.get("frames"):
        raise ValueError(f"{where}/{STATS_FILE}: no '{NORMALISATION_SPLIT}' frames to normalise with")
    return (np.asarray(split["mean"], dtype=np.float32),
            np.maximum(np.asarray(split["std"], dtype=np.float32), np.float32(STD_FLOOR)))


def read_normalisation(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """The normalisation of a feature set."""
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
    for path in list_files(join(features_dir, "*")):
        name = path.rsplit("/", 1)[-1]
        if name.startswith((f"{rewritten_split}-", f"{CLIP_SUMS_FILE}-")) or name in (COUNTS_FILE, MARKER_FILE):
            continue
        FileSystems.copy([path], [join(output_dir, name)])
    write_reports(output_dir, check_counts(counts, output_dir))


def read_separation(features_dir: str) -> dict:
    """separation.json of a separated-views feature set."""
    return read_json(join(features_dir, SEPARATION_FILE), "the output of beam_jobs.separate")
