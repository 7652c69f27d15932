"""Self-supervised learning from automatically separated sound scenes: train a MixIT separator on the
unlabelled train clips, separate every clip with its checkpoints (Beam), pretrain an encoder per proxy-task
setting (SM, CP, SM+CP; mixture vs channel or vs mixture; one or all checkpoints), then a shallow classifier
on each frozen embedding; mAP and d' on the evaluation split, one summary with the separator's SI-SNRi.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics

from components.data import select_train_set
from components.models import evaluate_classifier
from components.separation import evaluate_separator, pretrain_separation_ssl, separate_channels, train_separator
from components.ssl import train_on_encoder
from components.studies import summarize_separation_ssl
from components.tagging import export_model
from pipelines.experiment import DatasetNeeds, PreparedDataset, experiment

# checkpoints: separator steps the channel view draws from ("OR" rule); [] = all, -1 = the last one.
SETTINGS = [
    {"name": "sm_mixture", "proxy_tasks": "sm", "view": "mixture", "checkpoints": []},
    {"name": "cp_mixture", "proxy_tasks": "cp", "view": "mixture", "checkpoints": []},
    {"name": "sm_cp_mixture", "proxy_tasks": "sm+cp", "view": "mixture", "checkpoints": []},
    {"name": "sm_channel", "proxy_tasks": "sm", "view": "channel", "checkpoints": [-1]},
    {"name": "cp_channel", "proxy_tasks": "cp", "view": "channel", "checkpoints": [-1]},
    {"name": "sm_cp_channel", "proxy_tasks": "sm+cp", "view": "channel", "checkpoints": [-1]},
    {"name": "sm_cp_channel_or", "proxy_tasks": "sm+cp", "view": "channel", "checkpoints": []},
]


@experiment(name="separation-ssl",
            dataset=DatasetNeeds("fsd50k", "fsd50k", ("train", "val", "eval")))
def separation_ssl(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    separator_channels: int = 8,
    separator_steps: int = 4000,
    checkpoint_steps: list = [500, 1000, 2000, 4000],
    separator_segment_seconds: float = 2.0,
    separator_batch_size: int = 8,
    separator_learning_rate: float = 1e-3,
    evaluation_mixtures: int = 100,
    settings: list = SETTINGS,
    cp_weight: float = 1.0,
    tps: bool = True,
    specaugment: bool = True,
    architecture: str = "resnet18",
    width: float = 1.0,
    temperature: float = 0.2,
    pretrain_epochs: int = 100,
    pretrain_batch_size: int = 128,
    pretrain_learning_rate: float = 1e-3,
    shallow_hidden_units: int = 512,
    shallow_epochs: int = 30,
    shallow_learning_rate: float = 1e-3,
    batch_size: int = 64,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown):
    """Self-supervised learning from automatically separated sound scenes: a MixIT separator, an encoder
    pretrained per proxy-task setting on the separated channels, and a shallow classifier on each frozen
    embedding; eval mAP and d' beside the separator's SI-SNR improvement.

    Args:
        val_fraction: Share of the train clips held out (by uploader) for validation.
        separator_channels: Output channels M of the MixIT separator (the paper's TDCN++ has 8; this one is an
            STFT-masking network: docs/recipes.md).
        separator_steps: Training steps of the separator.
        checkpoint_steps: The steps at which separator checkpoints are kept (the channels are separated with each).
        separator_segment_seconds: Length of the training mixtures' segments.
        separator_batch_size: Mixtures per separator training step.
        separator_learning_rate: The separator's Adam learning rate.
        evaluation_mixtures: Synthetic mixtures with known sources the SI-SNR improvement is measured on.
        settings: One encoder per entry: {"name", "proxy_tasks": sm, cp or sm+cp, "view": mixture or channel
            (what the mixture is compared with), "checkpoints": the separator steps a channel view is drawn from
            ([] every one, -1 the last)}.
        cp_weight: Weight of the coincidence-prediction loss next to the similarity-maximisation loss.
        tps: Temporal proximity sampling: the views come from two random positions of the clip.
        specaugment: SpecAugment on both views.
        architecture: The encoder's architecture (resnet18, vgg_like, vgg41, vgg42, crnn).
        width: Filter-count multiplier of the encoder (1 = its published size).
        temperature: The similarity-maximisation (NT-Xent) temperature.
        pretrain_epochs: Pretraining epochs.
        pretrain_batch_size: Pretraining batch size (clips).
        pretrain_learning_rate: Pretraining learning rate.
        shallow_hidden_units: Hidden units of the shallow classifier on the frozen embedding.
        shallow_epochs: Epochs of the shallow classifier.
        shallow_learning_rate: Adam's learning rate of the shallow classifier.
        batch_size: Batch size of the shallow classifier.
    """
    seed, feature_params = data.seed, data.feature_params
    unlabelled = select_train_set(manifest=data.manifest, source_splits=["train"], flag="",
                                  val_fraction=val_fraction, seed=seed)
    unlabelled.set_display_name("unlabelled train set")
    separator = train_separator(manifest=unlabelled.outputs["split_manifest"], channels=separator_channels,
                                steps=separator_steps, checkpoint_steps=checkpoint_steps,
                                segment_seconds=separator_segment_seconds, batch_size=separator_batch_size,
                                learning_rate=separator_learning_rate, seed=seed, feature_params=feature_params)
    separator.set_display_name("MixIT separator")
    separation = evaluate_separator(separator=separator.outputs["separator"], mixtures=evaluation_mixtures)
    separation.set_display_name("separation SI-SNRi")
    separated = separate_channels(manifest=unlabelled.outputs["split_manifest"], separator=separator.outputs["separator"],
                           steps=[], feature_params=feature_params)
    separated.set_display_name("separated channels")
    with dsl.ParallelFor(settings) as setting:
        encoder = pretrain_separation_ssl(separated=separated.outputs["separated"], setting=setting, cp_weight=cp_weight,
                                          tps=tps, specaugment=specaugment, architecture=architecture, width=width,
                                          temperature=temperature, epochs=pretrain_epochs,
                                          batch_size=pretrain_batch_size, learning_rate=pretrain_learning_rate,
                                          seed=seed)
        exported = export_model(model=encoder.outputs["encoder"])
        exported.set_display_name("export the encoder")
        shallow = train_on_encoder(encoder=encoder.outputs["encoder"], features=data.features,
                                   freeze=True, epochs=shallow_epochs, batch_size=batch_size,
                                   learning_rate=shallow_learning_rate, optimizer="adam", seed=seed, loss="bce",
                                   head_hidden_units=shallow_hidden_units)
        evaluation = evaluate_classifier(model=shallow.outputs["model"], features=data.features,
                                         split="eval", variant=setting)
    summary = summarize_separation_ssl(separation=separation.outputs["result"],
                                       results=dsl.Collected(evaluation.outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"])
