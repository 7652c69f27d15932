"""Separated views (Beam): the feature extraction job, whole clips, plus the log-mels of each clip's
channels as separated by one or several checkpoints of a MixIT separator (keras_models.separation).

Separation runs here, once per clip and checkpoint, rather than on the fly in the representation's input
pipeline: the separator is deterministic, so on the fly it would repeat the same work every epoch
(`benchmarks/separated_views.py` measures both). Output: what beam_jobs.extract writes, with every example
also holding `channels` [checkpoints, M, frames, bands] (beam_jobs.contracts.schema), and separation.json naming
the separator and the checkpoint steps in that order.

    python -m beam_jobs.separate --manifest_dir M --output_dir F --separator_dir S --steps 500,2000
        [--splits train] [--num_shards N] [--runner DataflowRunner ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from beam_jobs.contracts import features
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.extract import extract
from keras_models.separation import load_separator, read_params, separate


@dataclasses.dataclass(frozen=True)
class SeparationSpec:
    separator_dir: str
    steps: tuple[int, ...]  # checkpoints, in the order of the examples' channels axis 0

    def validate(self, params: FeatureParams) -> str:
        """Fails before any work on a mismatch; returns separation.json's text."""
        separator = read_params(self.separator_dir)
        problems = []
        if not params.whole_clips:
            problems.append("separated channels are whole-clip examples: use FeatureParams(whole_clips=True)")
        if separator.sample_rate != params.sample_rate:
            problems.append(f"the separator runs at {separator.sample_rate} Hz, "
                            f"the features at {params.sample_rate} Hz")
        missing = [step for step in self.steps if step not in separator.checkpoint_steps]
        if not self.steps or missing:
            problems.append(f"steps {list(self.steps)}: need one or more of the saved checkpoints "
                            f"{list(separator.checkpoint_steps)}")
        if problems:
            raise ValueError(f"{self.separator_dir}: " + "; ".join(problems))
        return json.dumps({"separator_dir": self.separator_dir, "steps": list(self.steps),
                           "channels": separator.channels}, indent=1)

    def load(self, params: FeatureParams):
        """waveform (at the feature rate) -> (checkpoints, M, frames, bands) float32 log-mels."""
        separators = [load_separator(self.separator_dir, step) for step in self.steps]

        def separated_log_mels(waveform: np.ndarray) -> np.ndarray:
            return np.stack([np.stack([features.log_mel_spectrogram(channel, params)
                                       for channel in separate(separator, waveform)])
                             for separator in separators])

        return separated_log_mels


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--separator_dir", required=True)
    parser.add_argument("--steps", required=True, help="comma-separated checkpoint steps")
    parser.add_argument("--num_shards", type=int, default=0)
    parser.add_argument("--splits", default="train", help="comma-separated manifest splits ('' = all)")
    args, beam_args = parser.parse_known_args(argv)
    spec = SeparationSpec(args.separator_dir, tuple(int(step) for step in args.steps.split(",")))
    return extract(args.manifest_dir, args.output_dir, FeatureParams(whole_clips=True), args.num_shards, beam_args,
                   separation=spec, splits=tuple(filter(None, args.splits.split(","))))


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
