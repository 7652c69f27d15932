"""The clip x class score table: written by the scoring job (beam_jobs.scoring) and the tagger
(keras_models.tag), read by relabelling, pruning and analysis.

  header `clip_id,patches,<class 1>,...,<class n>` (CSV-quoted where a name holds a comma or quote)
  one row per clip: its id, its patch count and its clip scores (`%.6g`)
"""
from __future__ import annotations

import numpy as np

from beam_jobs.contracts.storage import csv_line, parse_csv_line


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
