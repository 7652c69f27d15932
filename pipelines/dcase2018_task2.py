"""DCASE2018 Task 2 (FSDKaggle2018): single-label tagging of 41 classes; a model trained on the whole train set
(verified and unverified labels) next to one trained on the verified clips only; MAP@3 on the test set.
"""
from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Model

from components.models import evaluate_single_label
from components.studies import summarize_dcase2018
from components.tagging import export_model
from pipelines.experiment import DatasetNeeds, PreparedDataset, Training, experiment, train, train_set_features

TRAIN_SETS = {"all": "", "verified": "manually_verified"}  # train set -> the flag its clips must have


@experiment(name="dcase2018-task2",
            dataset=DatasetNeeds("fsdkaggle2018", "dcase2018", ("train", "test"), ("manually_verified",)),
            training=Training(architecture="dcase2018_cnn", epochs=5, learning_rate=1e-4, lr_patience=0,
                              early_stopping_patience=0))
def dcase2018_task2(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    aggregation: str = "mean",
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model):
    """DCASE2018 Task 2 (FSDKaggle2018): a model trained on every train clip next to one trained on the
    manually verified clips only; MAP@3 and accuracy on the test set.

    Args:
        val_fraction: Share of each train set held out (by uploader) for validation.
        aggregation: Patch scores -> clip score: mean or geometric_mean.
    """
    tasks = {}
    for name, flag in TRAIN_SETS.items():
        train_set, features = train_set_features(data, ["train"], flag, val_fraction, name=name)
        model = train(data, features.outputs["features"])
        model.set_display_name(f"train on {name}")
        evaluation = evaluate_single_label(model=model.outputs["model"], features=features.outputs["features"],
                                           split="test", aggregation=aggregation, variant={"train_set": name})
        evaluation.set_display_name(f"evaluate {name}")
        tasks[name] = {"train_set": train_set, "model": model, "evaluation": evaluation}
    summary = summarize_dcase2018(all_result=tasks["all"]["evaluation"].outputs["result"],
                                  all_train_set=tasks["all"]["train_set"].outputs["split_manifest"],
                                  verified_result=tasks["verified"]["evaluation"].outputs["result"],
                                  verified_train_set=tasks["verified"]["train_set"].outputs["split_manifest"])
    summary.set_display_name("summary")
    exported = export_model(model=tasks["all"]["model"].outputs["model"])
    exported.set_display_name("export the model trained on all clips")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"],
                   exported=exported.outputs["exported"])
