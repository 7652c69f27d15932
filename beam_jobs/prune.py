"""Dataset pruning (loss-based instance selection, stage 2; methods.md section 5).

With the scores of a stage-1 checkpoint (beam_jobs.scoring), each train clip's loss against its label is
computed (the loss of keras_models.losses, Lq by default); the clips whose loss lies above the
`percentile`-th percentile of all clip losses (Beam's distributed quantiles) are dropped, and the train
split is rewritten without them. Training then continues from the checkpoint on the pruned set.

Output folder: the feature set with the train split pruned (counts.json: the pruned clips are counted
as rejected, so read = written + rejected still holds), plus
  pruned.csv        clip_id,loss,threshold,reason for every dropped clip
  prune_report.json percentile, threshold, clips kept and dropped, loss parameters

    python -m beam_jobs.prune --features_dir F --scores_dir S --output_dir O [--percentile 97] [--loss lq --q 0.7]
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import apache_beam as beam
import numpy as np
from apache_beam.transforms.stats import ApproximateQuantiles

from beam_jobs.contracts import feature_set, schema, score_table
from beam_jobs.contracts.storage import csv_line, join, read_json, write_json
from beam_jobs.runner import pipeline_options
from beam_jobs.contracts.publish import publishing

PRUNED_FILE = "pruned.csv"
REPORT_FILE = "prune_report.json"
QUANTILES = 1001  # threshold resolution: 0.1 % of the train clips


class ClipLossFn(beam.DoFn):
    """(clip id, {patches, scores}) -> (clip id, loss, patches) of a scored clip, its label taken from its
    patches; the loss is keras_models.losses' (imported on the workers, not when the job is built)."""

    def __init__(self, loss):
        self.loss = loss

    def setup(self):
        from keras import ops

        from keras_models.losses import per_example_loss

        self.loss_of = lambda labels, scores: float(
            ops.convert_to_numpy(per_example_loss(self.loss, labels, scores))[0])

    def process(self, element):
        clip_id, grouped = element
        patches, scores = list(grouped["patches"]), list(grouped["scores"])
        if not patches:
            raise ValueError(f"clip {clip_id} is in the score table but has no train patches")
        if len(scores) != 1:
            raise ValueError(f"clip {clip_id}: {len(scores)} rows in the score table, expected 1")
        labels = schema.decode_patch(patches[0])[schema.LABELS]
        yield clip_id, self.loss_of(labels[None, :].astype(np.float32), scores[0][None, :].astype(np.float32)), patches


class ClipLosses(beam.PTransform):
    """{patches: (clip id, serialized patch), scores: (clip id, scores)} -> (clip id, loss, patches)."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def expand(self, inputs):
        return inputs | "GroupByClip" >> beam.CoGroupByKey() | "ClipLoss" >> beam.ParDo(ClipLossFn(self.loss))


class SplitAtPercentile(beam.PTransform):
    """(clip id, loss, patches) -> {threshold: the percentile of the losses (one element), kept: clips at
    or below it, dropped: clips above it}."""

    def __init__(self, percentile: float):
        super().__init__()
        self.threshold_index = int(round(percentile / 100 * (QUANTILES - 1)))

    def expand(self, clips):
        threshold_index = self.threshold_index
        threshold = (clips
                     | "Losses" >> beam.Map(lambda clip: clip[1])
                     | "Quantiles" >> ApproximateQuantiles.Globally(QUANTILES)
                     | "Threshold" >> beam.Map(lambda quantiles: quantiles[threshold_index]))
        kept, dropped = clips | "Select" >> beam.Partition(lambda clip, _, bound: int(clip[1] > bound), 2,
                                                           beam.pvalue.AsSingleton(threshold))
        return {"threshold": threshold, "kept": kept, "dropped": dropped}


def prune(features_dir: str, scores_dir: str, output_dir: str, percentile: float = 97.0,
          loss=None, split: str = "train", beam_args: list[str] | None = None) -> dict:
    """Runs the job with `loss` (a keras_models.losses.LossParams; default Lq); returns prune_report.json's
    content."""
    if loss is None:
        from keras_models.losses import LossParams

        loss = LossParams("lq")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if feature_set.read_vocabulary(scores_dir) != feature_set.read_vocabulary(features_dir):
        raise ValueError(f"{scores_dir} scores other classes than {features_dir} holds")
    counts = feature_set.read_counts(features_dir)
    score_table.check_score_table(scores_dir)
    with publishing(output_dir, "prune") as publication:
        staging = publication.staging
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
            clips = ({"patches": p | "ReadPatches" >> feature_set.ReadPatchesByClip(features_dir, split),
                      "scores": p | "ReadScores" >> score_table.ReadScoreTable(scores_dir)}
                     | "ClipLosses" >> ClipLosses(loss))
            selected = clips | "SplitAtPercentile" >> SplitAtPercentile(percentile)
            threshold_side = beam.pvalue.AsSingleton(selected["threshold"])
            kept, dropped = selected["kept"], selected["dropped"]
            _ = ((kept | "KeptPatches" >> beam.FlatMap(lambda clip: [(split, patch) for patch in clip[2]]),)
                 | "WritePatches" >> feature_set.WriteFeatureFiles(staging, [split], line_files=()))
            _ = (dropped
                 | "PrunedRow" >> beam.Map(lambda clip, bound: csv_line(
                     [clip[0], f"{clip[1]:.6g}", f"{bound:.6g}", f"loss above the {percentile:g}th percentile"]),
                     threshold_side)
                 | "WritePruned" >> beam.io.WriteToText(join(staging, PRUNED_FILE), shard_name_template="",
                                                        num_shards=1, header="clip_id,loss,threshold,reason"))
            kept_counts = (kept
                           | "KeptCounts" >> beam.Map(lambda clip: (1, len(clip[2])))
                           | "SumKept" >> beam.CombineGlobally(lambda pairs: tuple(map(sum, zip(*pairs))) or (0, 0)))
            dropped_count = (dropped | "OnePerDropped" >> beam.Map(lambda _: 1)
                             | "SumDropped" >> beam.CombineGlobally(sum))
            _ = (kept_counts
                 | "WriteReport" >> beam.Map(
                     _write_report, dropped=beam.pvalue.AsSingleton(dropped_count), threshold=threshold_side,
                     output_dir=staging, percentile=percentile, loss=loss))
        report = read_json(join(staging, REPORT_FILE))
        split_counts = counts[split]
        feature_set.check_written(output_dir, f"clips of split {split!r} kept or pruned",
                                  report["kept"] + report["pruned"], split_counts["written"])
        feature_set.check_written(output_dir, f"kept patches of split {split!r}", feature_set.count_records(
            feature_set.shard_pattern(staging, split)), report["kept_patches"])
        counts[split] = {**split_counts, "written": report["kept"], "patches": report["kept_patches"],
                         "pruned": report["pruned"], "rejected": split_counts["rejected"] + report["pruned"]}
        feature_set.copy_feature_set(features_dir, staging, split, counts)
        publication.summary.update(report)
    return report


def _write_report(kept_counts, dropped, threshold, output_dir, percentile, loss):
    kept, kept_patches = kept_counts
    write_json(join(output_dir, REPORT_FILE), {
        "percentile": percentile, "threshold": threshold, "kept": kept, "kept_patches": kept_patches,
        "pruned": dropped, "loss": dataclasses.asdict(loss)})


def run(argv=None) -> dict:
    from keras_models.losses import LossParams

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("features_dir", "scores_dir", "output_dir"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--percentile", type=float, default=97.0)
    parser.add_argument("--loss", default="lq")
    parser.add_argument("--q", type=float, default=0.7)
    args, beam_args = parser.parse_known_args(argv)
    return prune(args.features_dir, args.scores_dir, args.output_dir, args.percentile,
                 LossParams(args.loss, q=args.q), beam_args=beam_args)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
