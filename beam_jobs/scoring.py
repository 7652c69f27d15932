"""Scoring every clip of a feature set with a trained model (Beam RunInference), and the helpers that
the jobs built on a score table share (relabelling, pruning).

Score table folder:
  scores-SSSSS-of-NNNNN.csv   header `clip_id,patches,<class 1>,...,<class n>`; one row per clip, the clip
                              score = the mean (or geometric mean) of its patches' scores
  vocabulary.json, scoring.json (which model, split, aggregation; clips and patches scored)

    python -m beam_jobs.scoring --model_dir M --features_dir F --output_dir S [--split train]
        [--aggregation mean|geometric_mean] [--runner DataflowRunner --sdk_container_image IMAGE ...]
"""
from __future__ import annotations

import argparse
import json
import typing

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from beam_jobs import schema
from beam_jobs.extract import COUNTS_FILE, STATS_FILE
from beam_jobs.manifest import VOCABULARY_FILE, join, read_text, write_text
from beam_jobs.runner import pipeline_options
from keras_models.evaluate import AGGREGATIONS, LOG_FLOOR

SCORES_PREFIX = "scores"
SCORING_FILE = "scoring.json"


class KerasPatchModelHandler(ModelHandler):
    """RunInference handler: loads a model folder of keras_models.train, scores batches of log-mel patches.

    Patches are normalised with the model's own training statistics (its stats.json), so that a feature
    set other than the training one is scored as the model expects.
    """

    def __init__(self, model_dir: str, max_batch_size: int = 64):
        super().__init__()
        self.model_dir, self.max_batch_size = model_dir, max_batch_size

    def load_model(self):
        from keras_models.evaluate import load_model

        return load_model(self.model_dir)

    def run_inference(self, batch, model, inference_args=None):
        scores = np.asarray(model.predict_on_batch(np.stack(batch)), dtype=np.float64)
        return [PredictionResult(example, score) for example, score in zip(batch, scores)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.max_batch_size}


class ClipScore(beam.CombineFn):
    """Per clip: the mean (or geometric mean) of its patches' score vectors, and the patch count."""

    def __init__(self, aggregation: str):
        self.geometric = aggregation == "geometric_mean"

    def create_accumulator(self):
        return 0.0, 0

    def add_input(self, accumulator, scores):
        total, patches = accumulator
        return total + (np.log(np.maximum(scores, LOG_FLOOR)) if self.geometric else scores), patches + 1

    def merge_accumulators(self, accumulators):
        totals, counts = zip(*accumulators)
        return sum(totals), sum(counts)

    def extract_output(self, accumulator):
        total, patches = accumulator
        mean = total / max(patches, 1)
        return patches, (np.exp(mean) if self.geometric else mean)


def read_json(path: str):
    return json.loads(read_text(path))



def read_patches_by_clip(p: beam.Pipeline, features_dir: str, split: str) -> beam.PCollection:
    """(clip id, serialized patch) pairs of a feature set's split, for jobs that regroup patches by clip."""
    return (p
            | "ReadPatches" >> beam.io.ReadFromTFRecord(schema.shard_pattern(features_dir, split))
            | "KeyPatches" >> beam.Map(lambda serialized: (schema.decode_patch(serialized)[schema.CLIP_ID],
                                                           serialized)))


def score_row(element) -> str:
    clip_id, (patches, scores) = element
    return ",".join([clip_id, str(patches), *(f"{value:.6g}" for value in scores)])


def parse_score_row(line: str) -> tuple[str, np.ndarray]:
    clip_id, _, *values = line.split(",")
    return clip_id, np.asarray(values, dtype=np.float64)


def score_table_header(vocabulary) -> str:
    if any("," in label for label in vocabulary):
        raise ValueError(f"class names with commas cannot be score table columns: {vocabulary}")
    return ",".join(["clip_id", "patches", *vocabulary])


def score_clips(model_dir: str, features_dir: str, output_dir: str, split: str = "train",
                aggregation: str = "mean", beam_args: list[str] | None = None, test_pipeline=None) -> dict:
    """Runs the scoring job; returns scoring.json's content."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"Unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    vocabulary = read_json(join(model_dir, VOCABULARY_FILE))
    if read_json(join(features_dir, VOCABULARY_FILE)) != vocabulary:
        raise ValueError(f"{features_dir}/{VOCABULARY_FILE} differs from the model's {model_dir}/{VOCABULARY_FILE}")
    header = score_table_header(vocabulary)
    counts = read_json(join(features_dir, COUNTS_FILE))
    if not counts.get(split, {}).get("patches"):
        raise ValueError(f"{features_dir}: no patches in split {split!r}")
    stats = read_json(join(model_dir, STATS_FILE))["train"]
    mean, std = np.asarray(stats["mean"], np.float32), np.maximum(np.asarray(stats["std"], np.float32), 1e-3)
    write_text(join(output_dir, VOCABULARY_FILE), json.dumps(vocabulary, indent=1))
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args or []))
    with pipeline as p:
        _ = (p
             | "ReadPatches" >> beam.io.ReadFromTFRecord(schema.shard_pattern(features_dir, split))
             | "Decode" >> beam.Map(schema.decode_patch)
             | "Normalise" >> beam.Map(lambda patch: (patch[schema.CLIP_ID], (patch[schema.LOGMEL] - mean) / std))
             | "Score" >> RunInference(KeyedModelHandler(KerasPatchModelHandler(model_dir)))
             | "ScoreVector" >> beam.MapTuple(lambda clip_id, result: (clip_id, result.inference))
             | "PerClip" >> beam.CombinePerKey(ClipScore(aggregation))
             | "Row" >> beam.Map(score_row)
             | "WriteTable" >> beam.io.WriteToText(join(output_dir, SCORES_PREFIX), file_name_suffix=".csv",
                                                   header=header))
    patch_counts = [int(line.split(",", 2)[1]) for line in _table_lines(output_dir)]
    clips, patches = len(patch_counts), sum(patch_counts)
    summary = {"model_dir": model_dir, "features_dir": features_dir, "split": split, "aggregation": aggregation,
               "clips": clips, "patches": patches}
    if patches != counts[split]["patches"]:
        raise RuntimeError(f"scored {patches} patches but {features_dir}/{COUNTS_FILE} lists "
                           f"{counts[split]['patches']} in split {split!r}")
    write_text(join(output_dir, SCORING_FILE), json.dumps(summary, indent=1))
    return summary


def score_table_pattern(scores_dir: str) -> str:
    return join(scores_dir, f"{SCORES_PREFIX}-*.csv")


def _table_lines(scores_dir: str) -> typing.Iterator[str]:
    paths = sorted(match.path for match in FileSystems.match([score_table_pattern(scores_dir)])[0].metadata_list)
    if not paths:
        raise FileNotFoundError(f"{scores_dir}: no score table ({SCORES_PREFIX}-*.csv)")
    for path in paths:
        yield from read_text(path).splitlines()[1:]


def load_score_table(scores_dir: str) -> dict[str, np.ndarray]:
    """clip id -> score vector, read on one machine (for analysis and tests; jobs read it in Beam)."""
    return dict(parse_score_row(line) for line in _table_lines(scores_dir))


def read_score_table(p: beam.Pipeline, scores_dir: str, label: str = "Scores") -> beam.PCollection:
    """(clip id, score vector) pairs of a score table."""
    return (p
            | f"Read{label}" >> beam.io.ReadFromText(score_table_pattern(scores_dir), skip_header_lines=1)
            | f"Parse{label}" >> beam.Map(parse_score_row))


def copy_feature_set(features_dir: str, output_dir: str, rewritten_split: str, counts: dict) -> None:
    """Copies a feature set's other splits and metadata beside a rewritten split; writes `counts`.

    The normalisation statistics stay those of the original train split: models trained on the new set
    (students, training continued after pruning) see their inputs scaled as the model they start from did.
    """
    for match in FileSystems.match([join(features_dir, "*")])[0].metadata_list:
        name = match.path.rsplit("/", 1)[-1]
        if name.startswith(f"{rewritten_split}-") or name == COUNTS_FILE:
            continue
        FileSystems.copy([match.path], [join(output_dir, name)])
    write_text(join(output_dir, COUNTS_FILE), json.dumps(counts, indent=1, sort_keys=True))


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--features_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--aggregation", default="mean", choices=AGGREGATIONS)
    args, beam_args = parser.parse_known_args(argv)
    return score_clips(args.model_dir, args.features_dir, args.output_dir, args.split, args.aggregation, beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
