"""FSD50K baseline: ingest -> log-mel features (Beam) -> VGG-like training -> clip-level evaluation.

Defaults are the paper's baseline model (VGG-like, width 1); `make demo` overrides them for a CPU run.
An empty `dataset_root` generates a synthetic FSD50K-format dataset of `synthetic_clips` clips.
"""
from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Model

from components.data import extract_features, ingest_dataset
from components.models import evaluate_classifier, train_classifier
from components.tagging import export_model
from pipelines.experiment import experiment


@experiment(name="fsd50k-baseline", description=__doc__.splitlines()[0])
def fsd50k_baseline(
    dataset_root: str = "",
    feature_params: str = "fsd50k",
    dataset_format: str = "fsd50k",
    audioset_train: str = "balanced",
    synthetic_clips: int = 2000,
    seed: int = 0,
    architecture: str = "vgg_like",
    width: float = 1.0,
    epochs: int = 50,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    mixed_precision: bool = False,
    beam_runner: str = "DirectRunner",
    beam_options: list = [],
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model):
    manifest = ingest_dataset(dataset_root=dataset_root, dataset_format=dataset_format, audioset_train=audioset_train,
                              synthetic_clips=synthetic_clips, seed=seed, beam_runner=beam_runner,
                              beam_options=beam_options, required_splits=["train", "val", "eval"])
    manifest.set_display_name("ingest")
    features = extract_features(manifest=manifest.outputs["manifest"], beam_runner=beam_runner,
                                beam_options=beam_options, feature_params=feature_params)
    features.set_display_name("extract log-mel features")
    model = train_classifier(features=features.outputs["features"], architecture=architecture, width=width,
                             epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                             mixed_precision=mixed_precision)
    model.set_display_name("train")
    evaluation = evaluate_classifier(model=model.outputs["model"], features=features.outputs["features"],
                                     split="eval", title="FSD50K baseline: eval set")
    evaluation.set_display_name("evaluate")
    exported = export_model(model=model.outputs["model"])
    exported.set_display_name("export (waveform in, scores out)")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported=Model)
    return outputs(metrics=evaluation.outputs["metrics"], report=evaluation.outputs["report"],
                   exported=exported.outputs["exported"])
