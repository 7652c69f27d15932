"""DCASE2019 Task 2 (FSDKaggle2019): train on the noisy set, then fine-tune (warm start) on the curated
set; lwlrap and a per-class lwlrap table on the test set, next to the noisy-only and curated-only models.
"""
from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Model

from components.models import evaluate_classifier
from components.studies import summarize_dcase2019
from components.tagging import export_model
from pipelines.experiment import (DatasetNeeds, PreparedDataset, Training, experiment, fine_tune, train,
                                  train_set_features)


@experiment(name="dcase2019-task2",
            dataset=DatasetNeeds("fsdkaggle2019", "dcase2019", ("train_curated", "train_noisy", "test")),
            training=Training(architecture="mobilenet_v1", epochs=None, learning_rate=1e-4, lr_patience=0,
                              early_stopping_patience=0))
def dcase2019_task2(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    noisy_epochs: int = 10,
    curated_epochs: int = 100,
    fine_tune_learning_rate: float = 3e-3,
    fine_tune_lr_decay: float = 0.94,
    noisy_label_smoothing: float = 0.3,
    curated_label_smoothing: float = 0.1,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, fine_tuned_report=Markdown, exported=Model):
    """DCASE2019 Task 2 (FSDKaggle2019): train on the noisy set, then fine-tune on the curated set; lwlrap on
    the test set next to the noisy-only and curated-only models.

    Args:
        val_fraction: Share of each train set held out (by uploader) for validation.
        noisy_epochs: Epochs on the noisy set.
        curated_epochs: Epochs on the curated set (fine-tuning, and the curated-only model).
        fine_tune_learning_rate: Adam's learning rate when fine-tuning on the curated set.
        fine_tune_lr_decay: The fine-tuning rate's factor every 2.5 epochs (exponential decay; 1 = none).
        noisy_label_smoothing: Label smoothing towards 0.5 on the noisy set.
        curated_label_smoothing: Label smoothing towards 0.5 on the curated set.
    """
    feature_sets = {}
    for name, split in (("noisy", "train_noisy"), ("curated", "train_curated")):
        _, features = train_set_features(data, [split], "", val_fraction, name=name)
        feature_sets[name] = features.outputs["features"]
    noisy = train(data, feature_sets["noisy"], epochs=noisy_epochs,
                  loss_params={"bce_smoothing": noisy_label_smoothing})
    noisy.set_display_name("train on noisy")
    curated_loss = {"bce_smoothing": curated_label_smoothing}
    fine_tuned = fine_tune(data, noisy.outputs["model"], feature_sets["curated"], epochs=curated_epochs,
                           learning_rate=fine_tune_learning_rate, lr_decay=fine_tune_lr_decay, loss_params=curated_loss)
    fine_tuned.set_display_name("fine-tune on curated")
    curated = train(data, feature_sets["curated"], epochs=curated_epochs, loss_params=curated_loss)
    curated.set_display_name("train on curated only")
    evaluations = {}
    for name, model_task in (("noisy only", noisy), ("noisy then curated", fine_tuned), ("curated only", curated)):
        evaluation = evaluate_classifier(model=model_task.outputs["model"], features=feature_sets["curated"],
                                         split="test", title=f"DCASE2019 Task 2, {name}: test set")
        evaluation.set_display_name(f"evaluate {name}")
        evaluations[name] = evaluation
    summary = summarize_dcase2019(noisy_only=evaluations["noisy only"].outputs["metrics"],
                                  noisy_then_curated=evaluations["noisy then curated"].outputs["metrics"],
                                  curated_only=evaluations["curated only"].outputs["metrics"])
    summary.set_display_name("summary")
    exported = export_model(model=fine_tuned.outputs["model"])
    exported.set_display_name("export the fine-tuned model")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, fine_tuned_report=Markdown, exported=Model)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"],
                   fine_tuned_report=evaluations["noisy then curated"].outputs["report"],
                   exported=exported.outputs["exported"])
