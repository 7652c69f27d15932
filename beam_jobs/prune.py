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
from keras import ops

from beam_jobs import schema
from beam_jobs.extract import COUNTS_FILE
from beam_jobs.manifest import join, write_text
from beam_jobs.runner import pipeline_options
from beam_jobs.scoring import copy_feature_set, read_json, read_patches_by_clip, read_score_table
from keras_models.losses import LossParams, per_example_loss

PRUNED_FILE = "pruned.csv"
REPORT_FILE = "prune_report.json"
QUANTILES = 1001  # threshold resolution: 0.1 % of the train clips


def clip_loss(element, loss: LossParams):
    """(clip id, loss, patches) of a scored clip; its label comes from its patches."""
    clip_id, grouped = element
    patches, scores = list(grouped["patches"]), list(grouped["scores"])
    if not patches:
        raise ValueError(f"clip {clip_id} is in the score table but has no train patches")
    if len(scores) != 1:
        raise ValueError(f"clip {clip_id}: {len(scores)} rows in the score table, expected 1")
    labels = schema.decode_patch(patches[0])[schema.LABELS]
    value = per_example_loss(loss, labels[None, :].astype(np.float32), scores[0][None, :].astype(np.float32))
    return clip_id, float(ops.convert_to_numpy(value)[0]), patches


def prune(features_dir: str, scores_dir: str, output_dir: str, percentile: float = 97.0,
          loss: LossParams = LossParams("lq"), split: str = "train", beam_args: list[str] | None = None,
          test_pipeline=None) -> dict:
    """Runs the job; returns prune_report.json's content."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if read_json(join(scores_dir, "vocabulary.json")) != read_json(join(features_dir, "vocabulary.json")):
        raise ValueError(f"{scores_dir} scores other classes than {features_dir} holds")
    counts = read_json(join(features_dir, COUNTS_FILE))
    threshold_index = int(round(percentile / 100 * (QUANTILES - 1)))
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args or []))
    with pipeline as p:
        patches = read_patches_by_clip(p, features_dir, split)
        clips = ({"patches": patches, "scores": read_score_table(p, scores_dir)}
                 | "GroupByClip" >> beam.CoGroupByKey()
                 | "ClipLoss" >> beam.Map(clip_loss, loss=loss))
        threshold = (clips
                     | "Losses" >> beam.Map(lambda clip: clip[1])
                     | "Quantiles" >> ApproximateQuantiles.Globally(QUANTILES)
                     | "Threshold" >> beam.Map(lambda quantiles: quantiles[threshold_index]))
        threshold_side = beam.pvalue.AsSingleton(threshold)
        kept, dropped = (clips
                         | "Select" >> beam.Partition(lambda clip, _, bound: int(clip[1] > bound), 2, threshold_side))
        _ = (kept
             | "KeptPatches" >> beam.FlatMap(lambda clip: clip[2])
             | "WritePatches" >> beam.io.WriteToTFRecord(join(output_dir, split), file_name_suffix=schema.SHARD_SUFFIX))
        _ = (dropped
             | "PrunedRow" >> beam.Map(lambda clip, bound: f"{clip[0]},{clip[1]:.6g},{bound:.6g},loss above the "
                                       f"{percentile:g}th percentile", threshold_side)
             | "WritePruned" >> beam.io.WriteToText(join(output_dir, PRUNED_FILE), shard_name_template="",
                                                    num_shards=1, header="clip_id,loss,threshold,reason"))
        kept_counts = (kept
                       | "KeptCounts" >> beam.Map(lambda clip: (1, len(clip[2])))
                       | "SumKept" >> beam.CombineGlobally(lambda pairs: tuple(map(sum, zip(*pairs))) or (0, 0)))
        dropped_count = dropped | "OnePerDropped" >> beam.Map(lambda _: 1) | "SumDropped" >> beam.CombineGlobally(sum)
        _ = (kept_counts
             | "WriteReport" >> beam.Map(
                 _write_report, dropped=beam.pvalue.AsSingleton(dropped_count), threshold=threshold_side,
                 output_dir=output_dir, percentile=percentile, loss=loss))
    report = read_json(join(output_dir, REPORT_FILE))
    split_counts = counts[split]
    counts[split] = {**split_counts, "written": report["kept"], "patches": report["kept_patches"],
                     "pruned": report["pruned"], "rejected": split_counts["rejected"] + report["pruned"]}
    copy_feature_set(features_dir, output_dir, split, counts)
    return report


def _write_report(kept_counts, dropped, threshold, output_dir, percentile, loss):
    kept, kept_patches = kept_counts
    write_text(join(output_dir, REPORT_FILE), json.dumps({
        "percentile": percentile, "threshold": threshold, "kept": kept, "kept_patches": kept_patches,
        "pruned": dropped, "loss": dataclasses.asdict(loss)}, indent=1))


def run(argv=None) -> dict:
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
