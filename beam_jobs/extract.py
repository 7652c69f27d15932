"""Feature extraction (Beam): manifest -> log-mel patches in sharded TFRecords per split.

Writes a feature-set folder (beam_jobs.contracts.feature_set): shards, stats.json, counts.json,
dead_letters.jsonl, params.json, vocabulary.json (and separation.json with separated views).

    python -m beam_jobs.extract --manifest_dir M --output_dir F [--feature_params P.json]
        [--num_shards N] [--runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import base64
import fractions
import json
import typing

import apache_beam as beam
import numpy as np
import threadpoolctl
from apache_beam.transforms.window import GlobalWindows

from beam_jobs.contracts import feature_set, features, schema
from beam_jobs.contracts.manifest import Manifest, ManifestRow, ReadManifestRows, read_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.storage import join, read_json, read_text, write_text
from beam_jobs.runner import pipeline_options, runs_in_parallel, settle_worker_process


class ClipFeatures(typing.NamedTuple):
    clip_id: str
    split: str
    logmel: np.ndarray  # (frames, bands) of the whole clip
    labels: np.ndarray  # (n_classes,) multi-hot
    channels: np.ndarray | None = None  # (checkpoints, M, frames, bands) separated views, when asked for
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
# Exact sums are integers in units of 2**-EXACT_SCALE: every float64 is a multiple of 2**-1074, and the 53-bit
# integer mantissa (frexp's) of the smallest subnormal is 2**52 of those units.
EXACT_SCALE = 1074 + 52
EXACT_BLOCK_ROWS = 1024  # int64 holds the sum of 1,024 mantissas of 53 bits


class ClipSummary(typing.NamedTuple):
    """What a split's counts and band statistics need of one written clip (feature_set.CLIP_SUMS_FILE)."""

    clip_id: str
    split: str
    frames: int
    patches: int
    silent: bool
    total: tuple[float, ...]  # per band: the float64 sum over the clip's frames
    squares: tuple[float, ...]  # per band: the float64 sum of squares

    def to_json(self) -> str:
        """One JSON line; the band sums as base64 of their little-endian float64 bits: exact, and a
        twentieth of the time of writing 192 floats in decimal."""
        return json.dumps({**self._asdict(), "total": _float64_text(self.total),
                           "squares": _float64_text(self.squares)})

    @classmethod
    def from_json(cls, line: str) -> "ClipSummary":
        fields = json.loads(line)
        return cls(**{**fields, "total": _float64_values(fields["total"]),
                      "squares": _float64_values(fields["squares"])})


def _float64_text(values: tuple[float, ...]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode("ascii")


def _float64_values(text: str) -> tuple[float, ...]:
    return tuple(np.frombuffer(base64.b64decode(text, validate=True), dtype="<f8").tolist())


def clip_summary(clip: ClipFeatures, params: FeatureParams) -> ClipSummary:
    total = squares = np.zeros(clip.logmel.shape[1])
    for start in range(0, len(clip.logmel), SUMMARY_BLOCK_FRAMES):  # float64 a block at a time: long clips
        block = clip.logmel[start:start + SUMMARY_BLOCK_FRAMES].astype(np.float64)
        total, squares = total + block.sum(axis=0), squares + np.einsum("ij,ij->j", block, block)
    return ClipSummary(clip.clip_id, clip.split, len(clip.logmel), features.example_count(len(clip.logmel), params),
                       bool(clip.silent), tuple(total.tolist()), tuple(squares.tolist()))


def exact_column_sums(rows) -> list[int]:
    """The exact sum of each column of finite float64 rows, as integers in units of 2**-EXACT_SCALE: adding
    them is exact too, so totals do not depend on the order of clips, bundles or workers. Values with the same
    exponent are summed as 53-bit integer mantissas in int64, a block of rows at a time; Python's integers take
    only one sum per column and exponent."""
    rows = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(rows).all():
        raise ValueError("exact sums need finite values")
    mantissas, exponents = np.frexp(rows)  # value = mantissa * 2**exponent, 0.5 <= |mantissa| < 1 (or 0)
    integers = np.ldexp(mantissas, 53).astype(np.int64)  # exact
    # One slot per (column, exponent): exponents lie in [-1073, 1024], so exponent + 2048 in [0, 4096).
    slots = np.arange(rows.shape[1]) * 4096 + (exponents + 2048)
    sums = [0] * rows.shape[1]
    for start in range(0, len(rows), EXACT_BLOCK_ROWS):
        block = slice(start, start + EXACT_BLOCK_ROWS)
        partial = np.zeros(rows.shape[1] * 4096, dtype=np.int64)
        np.add.at(partial, slots[block].ravel(), integers[block].ravel())
        for slot in np.flatnonzero(partial).tolist():
            sums[slot // 4096] += int(partial[slot]) << (slot % 4096 - 2048 - 53 + EXACT_SCALE)
    return sums


def exact_mean(sums: tuple[int, ...], count: int) -> np.ndarray:
    """Correctly rounded float64 means of exact_column_sums sums."""
    return np.array([float(fractions.Fraction(total, count << EXACT_SCALE)) for total in sums])


READ, REJECTED, WRITTEN = "read", "rejected", "written"


class SplitReports(beam.CombineFn):
    """Per-bundle accumulators (BundleReports, filled by `add`) -> (counts.json, stats.json): per split, clips
    read, rejected and written (and how many are digital silence), patches, and per-band frame count, sum and
    sum of squares -> mean/std. The clips' sums are added exactly, so the statistics do not depend on how clips
    were spread over workers and bundles, nor on which job sums them (a view's are those of extracting its
    clips afresh)."""

    def create_accumulator(self):
        # split -> [read, rejected, written, silent, patches, frames, band sums, band sums of squares, the
        # written clips' float64 (sums, sums of squares) not yet added]
        return {}

    def add(self, accumulator, kind: str, element) -> None:
        """A row READ or REJECTED, or a WRITTEN clip's ClipSummary."""
        totals = accumulator.get(element.split) or accumulator.setdefault(element.split, self._new_totals())
        if kind == WRITTEN:
            totals[2:6] = (totals[2] + 1, totals[3] + int(element.silent), totals[4] + element.patches,
                           totals[5] + element.frames)
            totals[8].append((element.total, element.squares))
            if len(totals[8]) == EXACT_BLOCK_ROWS:
                self._add_pending(totals)
        else:
            totals[0 if kind == READ else 1] += 1

    def settle(self, accumulator):
        """The accumulator with every pending clip's band sums added (exact_column_sums, a block at a time)."""
        for totals in accumulator.values():
            self._add_pending(totals)
        return accumulator

    def add_input(self, accumulator, partial):
        return self.merge_accumulators([accumulator, partial])

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            for split, summand in self.settle(accumulator).items():
                totals = merged.setdefault(split, self._new_totals())
                totals[:6] = [total + value for total, value in zip(totals[:6], summand[:6])]
                totals[6:8] = [self._add_bands(totals[band], summand[band]) for band in (6, 7)]
        return merged

    @staticmethod
    def _new_totals() -> list:
        return [0, 0, 0, 0, 0, 0, (), (), []]

    def _add_pending(self, totals: list) -> None:
        if totals[8]:
            sums, squares = zip(*totals[8])
            totals[6] = self._add_bands(totals[6], exact_column_sums(sums))
            totals[7] = self._add_bands(totals[7], exact_column_sums(squares))
            totals[8] = []

    @staticmethod
    def _add_bands(total, summand) -> tuple:
        return tuple(map(int.__add__, total, summand)) if total and summand else tuple(total or summand)

    def extract_output(self, accumulator):
        counts, stats = {}, {}
        for split, (read, rejected, written, silent, patches, frames, total, squares, _) in sorted(
                self.settle(accumulator).items()):
            counts[split] = {"read": read, "rejected": rejected, "written": written, "silent": silent,
                             "patches": patches}
            if not frames:
                stats[split] = {"frames": 0, "mean": [], "std": []}
                continue
            mean = exact_mean(total, frames)
            std = np.sqrt(np.maximum(exact_mean(squares, frames) - mean**2, 0.0))
            stats[split] = {"frames": frames, "mean": mean.tolist(), "std": std.tolist()}
        return counts, stats


class ComputeClipFeatures(beam.PTransform):
    """Manifest rows -> (ClipFeatures, failures); a failure is (row, (type, repr, traceback lines))."""

    def __init__(self, params: FeatureParams, class_index: dict[str, int], separation=None):
        super().__init__()
        self.params, self.class_index, self.separation = params, class_index, separation

    def expand(self, rows):
        return rows | beam.ParDo(ClipFeaturesFn(self.params, self.class_index, self.separation)
                                 ).with_exception_handling()


class BundleReports(beam.DoFn):
    """Rows read or rejected (`kind` READ or REJECTED), or written clips' ClipSummary (WRITTEN) -> one
    SplitReports accumulator per bundle, summed where they are produced: a Flatten of the clips' summaries
    from several stages before one combine is held in memory by the local runner (+390 MiB from 10,000 to
    50,000 clips)."""

    def __init__(self, kind: str):
        self.kind, self.reports, self.accumulator = kind, SplitReports(), {}

    def start_bundle(self):
        self.accumulator = self.reports.create_accumulator()

    def process(self, element):
        self.reports.add(self.accumulator, self.kind, element)

    def finish_bundle(self):
        if self.accumulator:
            yield GlobalWindows.windowed_value(self.reports.settle(self.accumulator))


class SummariseSplits(beam.PTransform):
    """{read: rows, written: ClipSummary, rejected: rows} -> one (counts, stats) element (SplitReports)."""

    def expand(self, inputs):
        return (tuple(inputs[kind] | f"{kind.title()}PerBundle" >> beam.ParDo(BundleReports(kind))
                      for kind in (READ, REJECTED, WRITTEN))
                | "Partials" >> beam.Flatten()
                | "Reports" >> beam.CombineGlobally(SplitReports()))


class WriteFeatureSet(beam.PTransform):
    """{examples: (split, serialized example), read: rows, written: ClipSummary, rejected: rows, dead_letters:
    JSON lines} -> a feature set's shards, clip sums and dead letters (one sink: feature_set.WriteFeatureFiles),
    counts.json and stats.json."""

    def __init__(self, output_dir: str, splits, num_shards: int = 0):
        super().__init__()
        self.output_dir, self.splits, self.num_shards = output_dir, tuple(splits), num_shards

    def expand(self, inputs):
        output_dir = self.output_dir
        _ = ((inputs["examples"],
              inputs[WRITTEN] | "ClipSumLines" >> beam.Map(lambda clip: (feature_set.CLIP_SUMS_FILE, clip.to_json())),
              inputs["dead_letters"] | "DeadLetterLines" >> beam.Map(
                  lambda line: (feature_set.DEAD_LETTERS_FILE, line)))
             | "WriteFiles" >> feature_set.WriteFeatureFiles(output_dir, self.splits, self.num_shards))
        return (inputs
                | "SummariseSplits" >> SummariseSplits()
                | "WriteReports" >> beam.MapTuple(
                    lambda counts, stats: feature_set.write_reports(output_dir, counts, stats)))


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
         | "FeatureSet" >> WriteFeatureSet(output_dir, splits, num_shards))


def extract(manifest_dir: str, output_dir: str, params: FeatureParams = FeatureParams(), num_shards: int = 0,
            beam_args: list[str] | None = None, separation=None, splits: tuple[str, ...] = ()) -> dict:
    """Runs the job on the manifest's `splits` (() = all); returns the per-split counts. The manifest (and
    the `separation` spec, which adds separated views: beam_jobs.separate) is validated before any work."""
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
        counts = feature_set.check_counts(read_json(join(staging, feature_set.COUNTS_FILE)), output_dir)
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
