"""DCASE2018 Task 2 (FSDKaggle2018): single-label tagging of 41 classes; a model trained on the whole train set
(verified and unverified labels) next to one trained on the verified clips only; MAP@3 on the test set.
"""
from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Model

from components.data import extract_features, ingest_dataset, select_train_set, view_features
from components.models import evaluate_single_label, train_classifier
from components.studies import summarize_dcase2018
from components.tagging import export_model
from pipelines.experiment import experiment

TRAIN_SETS = {"all": "", "verified": "manually_verified"}  # train set -> the flag its clips must have


@experiment(name="dcase2018-task2", description=__doc__.splitlines()[0])
def dcase2018_task2(
    dataset_root: str = "",
    feature_params: str = "fsd50k",
    dataset_format: str = "fsdkaggle2018",
    audioset_train: str = "balanced",
    synthetic_clips: int = 2000,
    seed: int = 0,
    val_fraction: float = 0.15,
    architecture: str = "vgg_like",
    width: float = 1.0,
    epochs: int = 50,
    aggregation: str = "mean",
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    mixed_precision: bool = False,
    beam_runner: str = "DirectRunner",
    beam_options: list = [],
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model):
    manifest = ingest_dataset(dataset_root=dataset_root, dataset_format=dataset_format, audioset_train=audioset_train,
                              synthetic_clips=synthetic_clips, seed=seed, beam_runner=beam_runner,
                              beam_options=beam_options, required_splits=["train", "test"],
                              required_flags=["manually_verified"])
    manifest.set_display_name("ingest")
    extracted = extract_features(manifest=manifest.outputs["manifest"], beam_runner=beam_runner,
                                 beam_options=beam_options, feature_params=feature_params)
    extracted.set_display_name("extract log-mel features")
    tasks = {}
    for name, flag in TRAIN_SETS.items():
        train_set = select_train_set(manifest=manifest.outputs["manifest"], source_splits=["train"], flag=flag,
                                     val_fraction=val_fraction, seed=seed)
        train_set.set_display_name(f"{name} train set")
        features = view_features(source=extracted.outputs["features"],
                                 split_manifest=train_set.outputs["split_manifest"], beam_runner=beam_runner,
                                 beam_options=beam_options)
        features.set_display_name(f"{name} features (a view)")
        model = train_classifier(features=features.outputs["features"], architecture=architecture, width=width,
                                 epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                 mixed_precision=mixed_precision)
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
