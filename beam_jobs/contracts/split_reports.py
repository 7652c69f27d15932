"""A feature set's counts and band statistics (counts.json, stats.json), summed exactly from its written clips'
summaries (the clip_sums files), so that they do not depend on how clips were spread over workers and bundles,
nor on which job sums them: extraction, or a view of the feature set."""
from __future__ import annotations

import base64
import fractions
import json
import typing

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

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
