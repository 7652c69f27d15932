"""FSD50K baseline: ingest -> log-mel features (Beam) -> VGG-like training -> clip-level evaluation.

Defaults: the VGG-like baseline (width 1) with the features and the training schedule of docs/recipes.md, which
names each source and deviation; `make demo` overrides three of them for a CPU run.
An empty `dataset_root` generates a synthetic FSD50K-format dataset of `synthetic_clips` clips.
"""
from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Model

from components.models import evaluate_classifier
from components.tagging import export_model
from pipelines.experiment import DatasetNeeds, PreparedDataset, Training, experiment, train


@experiment(name="fsd50k-baseline",
            dataset=DatasetNeeds("fsd50k", "fsd50k", ("train", "val", "eval")), training=Training())
def fsd50k_baseline(
    data: PreparedDataset,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model):
    """FSD50K baseline: ingest -> log-mel features (Beam) -> classifier training -> clip-level evaluation
    (mAP, d', lwlrap, per-class AP) on the eval split, and the model exported as a waveform tagger."""
    model = train(data, data.features)
    model.set_display_name("train")
    evaluation = evaluate_classifier(model=model.outputs["model"], features=data.features,
                                     split="eval", title="FSD50K baseline: eval set")
    evaluation.set_display_name("evaluate")
    exported = export_model(model=model.outputs["model"])
    exported.set_display_name("export (waveform in, scores out)")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model)
    return outputs(metrics=evaluation.outputs["metrics"], report=evaluation.outputs["report"],
                   exported=exported.outputs["exported"])
