"""Noisy labels (FSDnoisy18k): single-label models trained on the clean, noisy and noisy+clean train sets
with each noise-robust loss, and loss-based instance selection (in-batch discarding, dataset pruning)
after a stage-1 checkpoint; one summary table of test accuracy.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics

from components.labels import prune_train_set, score_clips
from components.models import evaluate_single_label
from components.studies import summarize_noisy_labels
from pipelines.experiment import (DatasetNeeds, PreparedDataset, Training, experiment, fine_tune, train,
                                  train_set_features)

TRAIN_SETS = {"clean": "manually_verified", "noisy": "!manually_verified", "noisy_and_clean": ""}
LOSSES = ["cce", "lq", "lsoft", "cce_max", "cce_outlier", "label_smoothing"]
# Every loss on every train set, and the noisy_small subset (a noisy set of the clean set's size) with CCE,
# the comparison of clean and noisy labels at equal size (ICASSP 2019).
DEFAULT_VARIANTS = [{"train_set": name, "flag": flag, "loss": loss} for name, flag in TRAIN_SETS.items()
                    for loss in LOSSES] + [{"train_set": "noisy_small", "flag": "noisy_small", "loss": "cce"}]


@experiment(name="noisy-labels",
            dataset=DatasetNeeds("fsdnoisy18k", "fsdnoisy18k", ("train", "test"), ("manually_verified", "noisy_small")),
            training=Training(architecture="icassp19_cnn", epochs=160))
def noisy_labels(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    loss_variants: list = DEFAULT_VARIANTS,
    stage1_epochs: int = 15,
    discard_stage1_epochs: int = 20,
    stage2_epochs: int = 85,
    stage2_q: float = 0.5,
    discard_percentile: float = 93.0,
    prune_percentile: float = 97.0,
    aggregation: str = "geometric_mean",
    mixup_alpha: float = 0.1,
    mixup_warmup_epochs: int = 10,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown):
    """Noisy labels (FSDnoisy18k): models trained on the clean, noisy and noisy + clean train sets with each
    noise-robust loss, and loss-based instance selection after a stage-1 model; test accuracy per variant.

    Args:
        val_fraction: Share of each train set held out (by uploader) for validation.
        loss_variants: One model per entry: {"train_set": a name, "flag": the dataset flag its clips need
            ("manually_verified", "!manually_verified" for its absence, "" for every clip), "loss": cce, lq,
            lsoft, cce_max, cce_outlier or label_smoothing}.
        stage1_epochs: Epochs of the stage-1 model (Lq, q 0.7) that scores the clips for pruning (the
            released config prunes after 15).
        discard_stage1_epochs: Epochs of the stage-1 model that in-batch discarding continues (the released
            config switches after 20).
        stage2_epochs: Epochs at most of each stage-2 run (no selection, in-batch discarding, pruned set);
            100 in all with the 15 of stage 1, as the released config.
        stage2_q: Lq's q in stage 2 of in-batch discarding.
        discard_percentile: In-batch discarding: the losses above this percentile of each batch are dropped.
        prune_percentile: Dataset pruning: the clips whose stage-1 loss is above this percentile are removed.
        aggregation: Patch scores -> clip score: geometric_mean (the authors') or mean.
        mixup_alpha: Mixup's alpha in the instance-selection runs (0 = none).
        mixup_warmup_epochs: Epochs of stage 1 without mixup.
    """
    with dsl.ParallelFor(loss_variants) as variant:
        _, features = train_set_features(data, ["train"], variant.flag, val_fraction)
        model = train(data, features.outputs["features"], loss=variant.loss)
        grid_result = evaluate_single_label(model=model.outputs["model"], features=features.outputs["features"],
                                            split="test", aggregation=aggregation, variant=variant)

    # Loss-based instance selection on the noisy set (the released config's train_data: noisy): stage 1 with
    # Lq (q 0.7), then three stage-2 runs.
    _, pool_features = train_set_features(data, ["train"], "!manually_verified", val_fraction, name="noisy")
    stage1 = train(data, pool_features.outputs["features"], epochs=stage1_epochs, loss="lq",
                   mixup_alpha=mixup_alpha, mixup_warmup_epochs=mixup_warmup_epochs)
    stage1.set_display_name("stage 1 (Lq)")
    pool, stage1_model = pool_features.outputs["features"], stage1.outputs["model"]
    mixing = {"mixup_alpha": mixup_alpha}
    continued = fine_tune(data, stage1_model, pool, epochs=stage2_epochs, loss="lq", **mixing)
    continued.set_display_name("stage 2: no selection")
    discard_stage1 = train(data, pool, epochs=discard_stage1_epochs, loss="lq",
                           mixup_warmup_epochs=mixup_warmup_epochs, **mixing)
    discard_stage1.set_display_name("stage 1 (Lq) for discarding")
    discarding = fine_tune(data, discard_stage1.outputs["model"], pool, epochs=stage2_epochs, loss="lq",
                           loss_params={"q": stage2_q, "discard_percentile": discard_percentile}, **mixing)
    discarding.set_display_name("stage 2: in-batch discarding")
    scores = score_clips(model=stage1_model, features=pool, split="train", aggregation=aggregation)
    scores.set_display_name("stage-1 scoring")
    pruned = prune_train_set(features=pool, scores=scores.outputs["scores"], percentile=prune_percentile, loss="lq",
                             loss_params={})
    on_pruned = fine_tune(data, stage1_model, pruned.outputs["pruned"], epochs=stage2_epochs, loss="lq", **mixing)
    on_pruned.set_display_name("stage 2: pruned set")
    selection_results = {}
    for selection, model_task in (("none", continued), ("batch_discard", discarding), ("pruning", on_pruned)):
        evaluation = evaluate_single_label(
            model=model_task.outputs["model"], features=pool_features.outputs["features"], split="test",
            aggregation=aggregation, variant={"train_set": "noisy", "loss": "lq", "selection": selection})
        evaluation.set_display_name(f"evaluate stage 2: {selection}")
        selection_results[selection] = evaluation.outputs["result"]
    summary = summarize_noisy_labels(results=dsl.Collected(grid_result.outputs["result"]),
                                     no_selection=selection_results["none"],
                                     batch_discard=selection_results["batch_discard"],
                                     pruning=selection_results["pruning"])
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"])
