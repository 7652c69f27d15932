"""The clip x class score table, the one module that writes and reads it: written by the scoring job
(beam_jobs.scoring) and the taggers (keras_models.tag, beam_jobs.tag), read by relabelling, pruning and
analysis. The jobs write it in shards, `scores-SSSSS-of-NNNNN.csv`, each with the header (WriteScoreTable).

  header `clip_id,patches,<class 1>,...,<class n>` (CSV-quoted where a name holds a comma or quote)
  one row per clip: its id, its patch count and its clip scores (`%.6g`)

The taggers' patch table: header `clip_id,start,end,<class 1>,...`, one row per patch (times in seconds).
"""
from __future__ import annotations

import typing

import apache_beam as beam
import numpy as np

from beam_jobs.contracts.publish import check_complete
from beam_jobs.contracts.storage import csv_line, join, list_files, parse_csv_line, read_text

SHARD_PREFIX = "scores"
WHAT = "a score table (beam_jobs.scoring or beam_jobs.tag)"


def shard_pattern(folder: str) -> str:
    return join(folder, f"{SHARD_PREFIX}-*.csv")


def rows_in(folder: str) -> typing.Iterator[str]:
    """The rows of a folder's score-table shards, headers skipped."""
    for path in list_files(shard_pattern(folder)):
        yield from read_text(path).splitlines()[1:]


def table_rows(folder: str) -> typing.Iterator[str]:
    """rows_in, failing where the folder holds no score-table shard at all."""
    if not list_files(shard_pattern(folder)):
        raise FileNotFoundError(f"{folder}: no score table ({SHARD_PREFIX}-*.csv)")
    return rows_in(folder)


def check_score_table(folder: str) -> None:
    check_complete(folder, WHAT)


def load_score_table(folder: str) -> dict[str, np.ndarray]:
    """clip id -> score vector, read on one machine (for analysis and tests; jobs read it in Beam)."""
    check_score_table(folder)
    return dict(parse_row(line) for line in table_rows(folder))


class WriteScoreTable(beam.PTransform):
    """Rows (`row`) -> the score table's shards in `folder`, each with the header of `vocabulary`."""

    def __init__(self, folder: str, vocabulary):
        super().__init__()
        self.folder, self.vocabulary = folder, vocabulary

    def expand(self, rows):
        return rows | beam.io.WriteToText(join(self.folder, SHARD_PREFIX), file_name_suffix=".csv",
                                          header=header(self.vocabulary))


class ReadScoreTable(beam.PTransform):
    """(clip id, score vector) pairs of a score table."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def expand(self, pipeline):
        return (pipeline
                | "Read" >> beam.io.ReadFromText(shard_pattern(self.folder), skip_header_lines=1)
                | "Parse" >> beam.Map(parse_row))


def header(vocabulary) -> str:
    return csv_line(["clip_id", "patches", *vocabulary])


def row(clip_id: str, patches: int, scores) -> str:
    """A clip's row; non-finite scores fail (a broken model must not write a table)."""
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"clip {clip_id}: non-finite clip scores {scores}; the model is broken")
    return csv_line([clip_id, str(patches), *(f"{value:.6g}" for value in scores)])


def parse_row(line: str) -> tuple[str, np.ndarray]:
    clip_id, _, *values = parse_csv_line(line)
    return clip_id, np.asarray(values, dtype=np.float64)


def patch_header(vocabulary) -> str:
    return csv_line(["clip_id", "start", "end", *vocabulary])


def patch_rows(clip_id: str, starts, patch_seconds: float, scores) -> list[str]:
    """One row per patch: its start and end times and its scores."""
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"clip {clip_id}: non-finite patch scores; the model is broken")
    return [csv_line([clip_id, f"{start:.3f}", f"{start + patch_seconds:.3f}", *(f"{value:.6g}" for value in row)])
            for start, row in zip(starts, scores)]
