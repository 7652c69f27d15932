"""Shift invariance: VGG41 (or VGG42) with each subsampling pool, with and without mixup, compared on
mAP, d' and classification consistency under time and frequency shifts."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics

from components.data import extract_features, ingest_dataset
from components.models import evaluate_shift_invariance, train_classifier
from components.studies import summarize_shift_invariance
from pipelines.experiment import experiment

POOLINGS = ["max", "blurpool3", "blurpool5", "tlpf", "aps", "tlpf_aps"]
DEFAULT_VARIANTS = [{"pooling": pooling, "mixup_alpha": alpha} for pooling in POOLINGS for alpha in (0.0, 0.3)]


@experiment(name="shift-invariance", description=__doc__.splitlines()[0])
def shift_invariance(
    dataset_root: str = "",
    feature_params: str = "fsd50k",
    dataset_format: str = "fsd50k",
    audioset_train: str = "balanced",
    synthetic_clips: int = 2000,
    seed: int = 0,
    architecture: str = "vgg41",
    width: float = 1.0,
    variants: list = DEFAULT_VARIANTS,
    epochs: int = 50,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    mixed_precision: bool = False,
    beam_runner: str = "DirectRunner",
    beam_options: list = [],
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML):
    manifest = ingest_dataset(dataset_root=dataset_root, dataset_format=dataset_format, audioset_train=audioset_train,
                              synthetic_clips=synthetic_clips, seed=seed, beam_runner=beam_runner,
                              beam_options=beam_options, required_splits=["train", "val", "eval"])
    manifest.set_display_name("ingest")
    features = extract_features(manifest=manifest.outputs["manifest"], beam_runner=beam_runner,
                                beam_options=beam_options, feature_params=feature_params)
    features.set_display_name("extract log-mel features")
    with dsl.ParallelFor(variants) as variant:
        model = train_classifier(features=features.outputs["features"], architecture=architecture, width=width,
                                 pooling=variant.pooling, mixup_alpha=variant.mixup_alpha, epochs=epochs,
                                 batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                 mixed_precision=mixed_precision)
        result = evaluate_shift_invariance(model=model.outputs["model"], features=features.outputs["features"],
                                           pooling=variant.pooling, mixup_alpha=variant.mixup_alpha)
    summary = summarize_shift_invariance(results=dsl.Collected(result.outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"], page=summary.outputs["page"])
