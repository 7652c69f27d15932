"""Loss-masking relabel job (missing labels, methods.md section 6): flags likely missing positives.

For each class, among the train clips for which that class is an implicit negative (neither a positive
nor verified absent), the clips the teacher scores in the top `tc_percent` % are flagged as potential
missing positives. The per-class threshold is the (1 - tc) score quantile, computed by Beam's distributed
approximate-quantile combiner; the scores strictly above it are flagged (the top tc %, rounded down).
The flagged entries get label_mask = 0 in the rewritten train TFRecords
(masked_bce then ignores their negative term); positives and explicit negatives are never flagged, and
tc = 0 reproduces the input exactly.

Output folder: the feature set with the train split rewritten, plus
  relabel_report.json  tc, and per class: implicit negatives, threshold, flagged (and, for synthetic data
                       with synthetic_truth.jsonl at the dataset root, how many flags are truly missing)
  flagged.csv          clip_id,class,score of every flagged entry

    python -m beam_jobs.relabel --features_dir F --manifest_dir M --scores_dir S --tc_percent 2 --output_dir O
"""
from __future__ import annotations

import argparse
import json

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.stats import ApproximateQuantiles

from beam_jobs.contracts import feature_set, schema, score_table
from beam_jobs.contracts.manifest import IMPLICIT_NEGATIVE, ManifestRow, ReadManifestRows, read_manifest
from beam_jobs.contracts.storage import csv_line, join, read_json, read_text, write_json
from beam_jobs.runner import pipeline_options
from beam_jobs.contracts.publish import publishing

REPORT_FILE = "relabel_report.json"
FLAGGED_FILE = "flagged.csv"
QUANTILES = 2001  # threshold resolution: 0.05 % of a class's implicit negatives
TRUTH_FILE = "synthetic_truth.jsonl"


def quantile_index(tc_percent: float) -> int:
    """Index, in ApproximateQuantiles' QUANTILES evenly spaced quantiles, of the (1 - tc) quantile."""
    return int(round((1.0 - tc_percent / 100.0) * (QUANTILES - 1)))


def implicit_negatives(row: ManifestRow, vocabulary) -> tuple[str, list[int]]:
    return row.clip_id, [i for i, state in enumerate(row.label_states(vocabulary)) if state == IMPLICIT_NEGATIVE]


def join_scores(element) -> tuple[str, np.ndarray, list[int]]:
    """(clip id, scores, implicit negative classes); every scored clip must be in the manifest."""
    clip_id, grouped = element
    scores, implicit = list(grouped["scores"]), list(grouped["implicit"])
    if len(scores) > 1 or len(implicit) > 1:
        raise ValueError(f"clip {clip_id} appears more than once in the score table or manifest")
    if scores and not implicit:
        raise ValueError(f"clip {clip_id} is in the score table but not in the manifest's train split")
    return (clip_id, scores[0], implicit[0]) if scores else None


def flag(clip, thresholds: dict[int, float]) -> list[tuple[str, int, float]]:
    clip_id, scores, implicit = clip
    return [(clip_id, c, float(scores[c])) for c in implicit if c in thresholds and scores[c] > thresholds[c]]


def remask(element, n_classes: int):
    """The clip's patches with label_mask 0 on its flagged classes."""
    _, grouped = element
    mask = np.ones(n_classes, dtype=np.float32)
    for flagged_class in grouped["flagged"]:
        mask[flagged_class] = 0.0
    for serialized in grouped["patches"]:
        if mask.all():
            yield serialized
            continue
        patch = schema.decode_patch(serialized)
        yield schema.encode_patch(patch[schema.CLIP_ID], patch[schema.PATCH_INDEX], patch[schema.LOGMEL],
                                  patch[schema.LABELS], patch[schema.LABEL_MASK] * mask)


class FlagMissingPositives(beam.PTransform):
    """{scores: (clip id, scores), implicit: (clip id, implicit negative classes)} -> {candidates: (class,
    score) of every implicit negative, thresholds: (class, threshold), flagged: (clip id, class, score)}."""

    def __init__(self, tc_percent: float):
        super().__init__()
        self.threshold_index = quantile_index(tc_percent)

    def expand(self, inputs):
        threshold_index = self.threshold_index
        clips = (inputs
                 | "JoinScores" >> beam.CoGroupByKey()
                 | "Clips" >> beam.Map(join_scores)
                 | "Scored" >> beam.Filter(lambda clip: clip is not None))
        candidates = clips | "Candidates" >> beam.FlatMap(lambda clip: [(c, float(clip[1][c])) for c in clip[2]])
        thresholds = (candidates
                      | "Quantiles" >> ApproximateQuantiles.PerKey(QUANTILES)
                      | "Threshold" >> beam.MapTuple(lambda c, quantiles: (c, quantiles[threshold_index])))
        flagged = clips | "Flag" >> beam.FlatMap(flag, thresholds=beam.pvalue.AsDict(thresholds))
        return {"candidates": candidates, "thresholds": thresholds, "flagged": flagged}


class RemaskPatches(beam.PTransform):
    """{patches: (clip id, serialized patch), flagged: (clip id, class)} -> serialized patches with
    label_mask 0 on their clip's flagged classes."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def expand(self, inputs):
        return (inputs
                | "GroupPatches" >> beam.CoGroupByKey()
                | "Remask" >> beam.FlatMap(remask, n_classes=self.n_classes))


def true_labels(manifest_source: dict) -> dict[str, set[str]] | None:
    """clip id -> true labels, where the dataset is synthetic (its generator recorded them)."""
    path = join(manifest_source.get("root", ""), TRUTH_FILE)
    if not manifest_source.get("root") or not FileSystems.exists(path):
        return None
    rows = (json.loads(line) for line in read_text(path).splitlines() if line.strip())
    return {row["fname"]: set(row["true_labels"]) for row in rows}


def write_report(per_class: list, output_dir: str, vocabulary, tc_percent: float, with_truth: bool) -> None:
    """relabel_report.json from [(class, {negatives: [n], threshold: [t], flagged: [n], truly_missing: [n]})]."""
    classes = {label: {"implicit_negatives": 0, "threshold": None, "flagged": 0} for label in vocabulary}
    for c, values in per_class:
        classes[vocabulary[c]].update(implicit_negatives=sum(values["negatives"]),
                                      threshold=(values["threshold"] or [None])[0], flagged=sum(values["flagged"]))
        if with_truth:
            classes[vocabulary[c]]["truly_missing"] = sum(values["truly_missing"])
    report = {"tc_percent": tc_percent, "classes": classes}
    for key in ("implicit_negatives", "flagged") + (("truly_missing",) if with_truth else ()):
        report[key] = sum(entry.get(key, 0) for entry in classes.values())
    if with_truth:  # the share of flags that are real missing positives: only synthetic data can tell
        report["flag_precision"] = report["truly_missing"] / report["flagged"] if report["flagged"] else None
    write_json(join(output_dir, REPORT_FILE), report)


def relabel(features_dir: str, manifest_dir: str, scores_dir: str, tc_percent: float, output_dir: str,
            split: str = "train", beam_args: list[str] | None = None) -> dict:
    """Runs the job; returns relabel_report.json's content."""
    if not 0 <= tc_percent < 100:
        raise ValueError(f"tc_percent must be in [0, 100), got {tc_percent}")
    manifest = read_manifest(manifest_dir)
    vocabulary = list(manifest.vocabulary)
    for folder in (features_dir, scores_dir):
        if feature_set.read_vocabulary(folder) != vocabulary:
            raise ValueError(f"{folder}/{feature_set.VOCABULARY_FILE} differs from the manifest's vocabulary "
                             f"({manifest_dir})")
    counts = feature_set.read_counts(features_dir)
    score_table.check_score_table(scores_dir)
    truth = true_labels(manifest.source)
    with publishing(output_dir, "relabel") as publication:
        staging = publication.staging
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
            implicit = (p
                        | "ReadRows" >> ReadManifestRows(manifest_dir, [split])
                        | "ImplicitNegatives" >> beam.Map(implicit_negatives, vocabulary=vocabulary))
            found = ({"scores": p | "ReadScores" >> score_table.ReadScoreTable(scores_dir), "implicit": implicit}
                     | "FlagMissingPositives" >> FlagMissingPositives(tc_percent))
            flagged = found["flagged"]
            patches = p | "ReadPatches" >> feature_set.ReadPatchesByClip(features_dir, split)
            flagged_by_clip = flagged | "FlaggedByClip" >> beam.MapTuple(lambda clip_id, c, _: (clip_id, c))
            remasked = ({"patches": patches, "flagged": flagged_by_clip}
                        | "RemaskPatches" >> RemaskPatches(len(vocabulary))
                        | "InSplit" >> beam.Map(lambda patch: (split, patch)))
            _ = (remasked,) | "WritePatches" >> feature_set.WriteFeatureFiles(staging, [split], line_files=())
            per_class = {"negatives": found["candidates"] | "OnePerCandidate" >> beam.Map(lambda item: (item[0], 1))
                         | "CountNegatives" >> beam.CombinePerKey(sum),
                         "threshold": found["thresholds"],
                         "flagged": flagged | "OnePerFlag" >> beam.MapTuple(lambda _, c, __: (c, 1))
                         | "CountFlagged" >> beam.CombinePerKey(sum)}
            if truth is not None:
                per_class["truly_missing"] = (
                    flagged
                    | "TrulyMissing" >> beam.MapTuple(
                        lambda clip_id, c, _: (c, int(vocabulary[c] in truth.get(clip_id, ()))))
                    | "CountTrulyMissing" >> beam.CombinePerKey(sum))
            _ = (per_class
                 | "GroupByClass" >> beam.CoGroupByKey()
                 | "AllClasses" >> beam.combiners.ToList()
                 | "WriteReport" >> beam.Map(write_report, output_dir=staging, vocabulary=vocabulary,
                                             tc_percent=tc_percent, with_truth=truth is not None))
            _ = (flagged
                 | "FlagRow" >> beam.MapTuple(
                     lambda clip_id, c, score: csv_line([clip_id, vocabulary[c], f"{score:.6g}"]))
                 | "WriteFlagged" >> beam.io.WriteToText(join(staging, FLAGGED_FILE), shard_name_template="",
                                                         num_shards=1, header="clip_id,class,score"))
        feature_set.check_written(output_dir, f"patches of split {split!r}", feature_set.count_records(
            feature_set.shard_pattern(staging, split)), counts[split]["patches"])  # relabelling drops none
        feature_set.copy_feature_set(features_dir, staging, split, counts)
        publication.summary.update({key: value for key, value in read_report(staging).items() if key != "classes"})
    return read_report(output_dir)


def read_report(relabelled_dir: str) -> dict:
    return read_json(join(relabelled_dir, REPORT_FILE), "the output of beam_jobs.relabel")


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("features_dir", "manifest_dir", "scores_dir", "output_dir"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--tc_percent", type=float, required=True)
    parser.add_argument("--split", default="train")
    args, beam_args = parser.parse_known_args(argv)
    return relabel(args.features_dir, args.manifest_dir, args.scores_dir, args.tc_percent, args.output_dir,
                   args.split, beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
