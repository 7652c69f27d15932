"""Tagging audio at scale (Beam RunInference): the command-line tagger (keras_models.tag) as a job.

    python -m beam_jobs.tag --model MODEL_OR_EXPORT_DIR --output_dir OUT [--timestamps] [--aggregation mean]
        (PATH ... | --manifest_dir M) [--runner DataflowRunner ...]

PATHs: audio files, folders (searched recursively) or object-store prefixes; or every row of a manifest
(clip id and audio path from ingest). Each file is decoded and resampled as the feature job does, then
scored by the model (an export folder, or a classifier folder built into the same waveform model).

Output folder (published whole, beam_jobs.contracts.publish):
  scores-SSSSS-of-NNNNN.csv    the score table (beam_jobs.contracts.score_table); clip id = the path, or the
                               manifest's clip id
  patches-SSSSS-of-NNNNN.csv   with --timestamps: one row per patch (clip_id,start,end,<class>...)
  rejected.jsonl               one line per file that could not be tagged: clip id, path, reason
  vocabulary.json, tagging.json (model, inputs, files, tagged, rejected)
The job fails when no file could be tagged.
"""
from __future__ import annotations

import argparse
import json

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from beam_jobs.contracts import feature_set, model_folder, score_table
from beam_jobs.contracts.aggregation import AGGREGATIONS, check_aggregation
from beam_jobs.contracts.features import find_audio_files
from beam_jobs.contracts.manifest import read_manifest
from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.storage import join, read_text, write_json
from beam_jobs.runner import pipeline_options

PATCHES_PREFIX = "patches"
REJECTED_FILE = "rejected.jsonl"
TAGGING_FILE = "tagging.json"


class WaveformTaggerHandler(ModelHandler):
    """RunInference handler: loads the waveform tagger once per worker; each element is an audio path, each
    result the tagger's outputs or, for a file that cannot be tagged, the reason as a string."""

    def __init__(self, model: str, aggregation: str):
        super().__init__()
        self.model, self.aggregation = model, aggregation

    def load_model(self):
        from keras_models.tag import load_classifier  # on the workers only: TensorFlow is heavy to import

        return load_classifier(self.model, self.aggregation)

    def run_inference(self, batch, model, inference_args=None):
        from keras_models.tag import tag_file

        results = []
        for path in batch:
            try:
                results.append(PredictionResult(path, tag_file(model, path)))
            except Exception as error:  # noqa: BLE001 - every file is tagged or rejected with its reason
                results.append(PredictionResult(path, f"{type(error).__name__}: {error}"))
        return results

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 8}


class SortResults(beam.DoFn):
    """(clip id, result) -> score rows (main), patch rows and rejected lines (tagged outputs)."""

    def __init__(self, patch_seconds: float, timestamps: bool):
        self.patch_seconds, self.timestamps = patch_seconds, timestamps

    def process(self, element):
        clip_id, result = element
        if isinstance(result.inference, str):
            yield beam.pvalue.TaggedOutput("rejected", json.dumps(
                {"clip_id": clip_id, "path": result.example, "reason": result.inference}))
            return
        outputs = result.inference
        yield score_table.row(clip_id, len(outputs["patch_scores"]), outputs["clip_scores"])
        if self.timestamps:
            for line in score_table.patch_rows(clip_id, outputs["patch_starts"], self.patch_seconds,
                                               outputs["patch_scores"]):
                yield beam.pvalue.TaggedOutput("patches", line)


def _inputs(paths: list[str], manifest_dir: str) -> list[tuple[str, str]]:
    """(clip id, audio path) of every input."""
    if bool(paths) == bool(manifest_dir):
        raise ValueError("give audio PATHs or --manifest_dir, not both or neither")
    if manifest_dir:
        return [(row.clip_id, row.audio_path) for row in read_manifest(manifest_dir).rows]
    files = find_audio_files(paths)
    if not files:
        raise FileNotFoundError(f"no audio files in {paths}")
    return [(path, path) for path in files]


def tag_audio(model: str, output_dir: str, paths: list[str] = (), manifest_dir: str = "", timestamps: bool = False,
              aggregation: str = "mean", beam_args: list[str] | None = None) -> dict:
    """Runs the job; returns tagging.json's content."""
    check_aggregation(aggregation)
    vocabulary = model_folder.read_vocabulary(model)  # a classifier folder or an export: both hold it
    if not vocabulary:
        raise ValueError(f"{model} is an encoder: it has no classes to tag with")
    patch_seconds = model_folder.read_feature_params(model).patch_seconds
    inputs = _inputs(list(paths), manifest_dir)
    with publishing(output_dir, "tagging") as publication:
        staging = publication.staging
        write_json(join(staging, feature_set.VOCABULARY_FILE), list(vocabulary))
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
            results = (p
                       | "Inputs" >> beam.Create(inputs)
                       | "Spread" >> beam.Reshuffle()
                       | "Tag" >> RunInference(KeyedModelHandler(WaveformTaggerHandler(model, aggregation)))
                       | "Sort" >> beam.ParDo(SortResults(patch_seconds, timestamps)).with_outputs(
                           "rejected", "patches", main="scores"))
            _ = results.scores | "WriteScores" >> score_table.WriteScoreTable(staging, vocabulary)
            _ = results.rejected | "WriteRejected" >> beam.io.WriteToText(
                join(staging, REJECTED_FILE), shard_name_template="")
            if timestamps:
                _ = results.patches | "WritePatches" >> beam.io.WriteToText(
                    join(staging, PATCHES_PREFIX), file_name_suffix=".csv",
                    header=score_table.patch_header(vocabulary))
        tagged = sum(1 for _ in score_table.rows_in(staging))
        rejected = len(read_text(join(staging, REJECTED_FILE)).splitlines())
        summary = {"model": model, "inputs": manifest_dir or list(paths), "files": len(inputs), "tagged": tagged,
                   "rejected": rejected, "aggregation": aggregation, "timestamps": timestamps}
        if tagged + rejected != len(inputs):
            raise RuntimeError(f"{len(inputs)} files in, but {tagged} tagged and {rejected} rejected")
        if not tagged:
            raise RuntimeError(f"none of the {len(inputs)} files could be tagged; see the reasons above")
        write_json(join(staging, TAGGING_FILE), summary)
        publication.summary.update(summary)
    return summary


def tagging_report(output_dir: str, top_k: int = 3, rows: int = 50) -> str:
    """Markdown: the counts, the top labels of the first `rows` files and the rejected files."""
    summary = json.loads(read_text(join(output_dir, TAGGING_FILE)))
    vocabulary = feature_set.read_vocabulary(output_dir)
    lines = [f"# Tagging: {summary['tagged']} of {summary['files']} files tagged, {summary['rejected']} rejected",
             "", f"Model `{summary['model']}`.", "", "| file | top labels |", "|---|---|"]
    table = [score_table.parse_row(line) for line in score_table.rows_in(output_dir)]
    for clip_id, scores in sorted(table)[:rows]:
        best = sorted(range(len(scores)), key=lambda index: -scores[index])[:top_k]
        lines.append(f"| {clip_id} | " + ", ".join(f"{vocabulary[index]} {scores[index]:.3f}" for index in best) + " |")
    if len(table) > rows:
        lines.append(f"| ... {len(table) - rows} more in the score table | |")
    rejected = [json.loads(line) for line in read_text(join(output_dir, REJECTED_FILE)).splitlines()]
    if rejected:
        lines += ["", "## Rejected", "", "| file | reason |", "|---|---|"]
        lines += [f"| {entry['path']} | {entry['reason']} |" for entry in rejected]
    return "\n".join(lines) + "\n"


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a classifier folder or an export folder")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--manifest_dir", default="")
    parser.add_argument("--timestamps", action="store_true")
    parser.add_argument("--aggregation", default="mean", choices=AGGREGATIONS)
    parser.add_argument("paths", nargs="*", metavar="PATH")
    args, beam_args = parser.parse_known_args(argv)
    return tag_audio(args.model, args.output_dir, args.paths, args.manifest_dir, args.timestamps, args.aggregation,
                     beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
