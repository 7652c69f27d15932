"""Scoring every clip of a feature set with a trained model (Beam RunInference), and the score table that
the jobs built on it (relabelling, pruning) read.

Score table folder:
  scores-SSSSS-of-NNNNN.csv   the score table (beam_jobs.contracts.score_table): one row per clip, the clip
                              score aggregated from its patches' scores (beam_jobs.contracts.aggregation)
  vocabulary.json, scoring.json (which model, split, aggregation; clips and patches scored)

    python -m beam_jobs.scoring --model_dir M --features_dir F --output_dir S [--split train]
        [--aggregation mean|geometric_mean] [--runner DataflowRunner --sdk_container_image IMAGE ...]
"""
from __future__ import annotations

import argparse
import json

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from beam_jobs.contracts import aggregation as clip_aggregation
from beam_jobs.contracts import feature_set, model_folder, schema, score_table
from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.storage import join, parse_csv_line, write_json
from beam_jobs.runner import pipeline_options

SCORING_FILE = "scoring.json"


class KerasPatchModelHandler(ModelHandler):
    """RunInference handler: loads a model folder of keras_models.train, scores batches of log-mel patches."""

    def __init__(self, model_dir: str, max_batch_size: int = 64):
        super().__init__()
        self.model_dir, self.max_batch_size = model_dir, max_batch_size

    def load_model(self):
        from keras_models.model_folder import load_model  # on the workers only: TensorFlow is heavy to import

        return load_model(self.model_dir)

    def run_inference(self, batch, model, inference_args=None):
        scores = np.asarray(model.predict_on_batch(np.stack(batch)), dtype=np.float64)
        return [PredictionResult(example, score) for example, score in zip(batch, scores)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.max_batch_size}


class ClipScore(beam.CombineFn):
    """Per clip: (patch count, clip score) from its patches' score vectors."""

    def __init__(self, aggregation: str):
        self.aggregation = clip_aggregation.check_aggregation(aggregation)

    def create_accumulator(self):
        return 0.0, 0

    def add_input(self, accumulator, scores):
        total, patches = accumulator
        return total + clip_aggregation.patch_terms(scores, self.aggregation), patches + 1

    def merge_accumulators(self, accumulators):
        totals, counts = zip(*accumulators)
        return sum(totals), sum(counts)

    def extract_output(self, accumulator):
        total, patches = accumulator
        return patches, clip_aggregation.clip_score(total, max(patches, 1), self.aggregation)


class NormalisePatches(beam.PTransform):
    """Serialized patches -> (clip id, patch normalised with a model's training statistics)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.mean, self.std = mean, std

    def expand(self, serialized):
        mean, std = self.mean, self.std
        return (serialized
                | "Decode" >> beam.Map(schema.decode_patch)
                | "Normalise" >> beam.Map(lambda patch: (patch[schema.CLIP_ID], (patch[schema.LOGMEL] - mean) / std)))


class AggregateClipScores(beam.PTransform):
    """(clip id, patch score vector) -> score table rows `clip_id,patches,scores...`."""

    def __init__(self, aggregation: str):
        super().__init__()
        self.aggregation = aggregation

    def expand(self, patch_scores):
        return (patch_scores
                | "PerClip" >> beam.CombinePerKey(ClipScore(self.aggregation))
                | "Row" >> beam.Map(score_row))


def score_row(element) -> str:
    clip_id, (patches, scores) = element
    return score_table.row(clip_id, patches, scores)


def score_clips(model_dir: str, features_dir: str, output_dir: str, split: str = "train",
                aggregation: str = "mean", beam_args: list[str] | None = None) -> dict:
    """Runs the scoring job; returns scoring.json's content. Patches are normalised with the model's own
    training statistics (its stats.json), so a feature set other than the training one is scored as the
    model expects."""
    clip_aggregation.check_aggregation(aggregation)
    vocabulary = model_folder.read_vocabulary(model_dir)
    if feature_set.read_vocabulary(features_dir) != vocabulary:
        raise ValueError(f"{features_dir}/{feature_set.VOCABULARY_FILE} differs from the model's "
                         f"{model_dir}/{feature_set.VOCABULARY_FILE}")
    counts = feature_set.read_counts(features_dir)
    if not counts.get(split, {}).get("patches"):
        raise ValueError(f"{features_dir}: no patches in split {split!r}")
    mean, std = model_folder.read_normalisation(model_dir)
    with publishing(output_dir, "scoring") as publication:
        staging = publication.staging
        write_json(join(staging, feature_set.VOCABULARY_FILE), vocabulary)
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
            _ = (p
                 | "ReadPatches" >> beam.io.ReadFromTFRecord(feature_set.shard_pattern(features_dir, split))
                 | "Normalise" >> NormalisePatches(mean, std)
                 | "Score" >> RunInference(KeyedModelHandler(KerasPatchModelHandler(model_dir)))
                 | "ScoreVector" >> beam.MapTuple(lambda clip_id, result: (clip_id, result.inference))
                 | "ClipScores" >> AggregateClipScores(aggregation)
                 | "WriteTable" >> score_table.WriteScoreTable(staging, vocabulary))
        patch_counts = [int(parse_csv_line(line)[1]) for line in score_table.table_rows(staging)]
        clips, patches = len(patch_counts), sum(patch_counts)
        summary = {"model_dir": model_dir, "features_dir": features_dir, "split": split, "aggregation": aggregation,
                   "clips": clips, "patches": patches}
        feature_set.check_written(output_dir, f"clip scores of split {split!r}", clips, counts[split]["written"])
        feature_set.check_written(output_dir, f"patches scored in split {split!r}", patches, counts[split]["patches"])
        write_json(join(staging, SCORING_FILE), summary)
        publication.summary.update(summary)
    return summary


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--features_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--aggregation", default="mean", choices=clip_aggregation.AGGREGATIONS)
    args, beam_args = parser.parse_known_args(argv)
    return score_clips(args.model_dir, args.features_dir, args.output_dir, args.split, args.aggregation, beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
