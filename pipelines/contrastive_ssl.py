"""Contrastive self-supervised learning: pretrain an encoder with NT-Xent on the unlabelled train clips
(TPS, mix-back, augmentations), then per downstream train set (noisy, small clean): kNN, linear
evaluation and fine-tuning of the pretrained encoder next to training from scratch; one summary table.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Model

from components.data import extract_features, select_train_set
from components.models import evaluate_single_label, train_classifier
from components.ssl import evaluate_knn, pretrain_contrastive, train_on_encoder
from components.studies import summarize_contrastive
from components.tagging import export_model
from pipelines.experiment import DatasetNeeds, PreparedDataset, experiment, train_set_features

DOWNSTREAM_SETS = [{"train_set": "noisy", "flag": "!manually_verified"},
                   {"train_set": "clean", "flag": "manually_verified"}]
AUGMENTATIONS = ["rrc", "compander", "noise"]  # the released config's (keras_models.contrastive.ContrastiveParams)


@experiment(name="contrastive-ssl",
            dataset=DatasetNeeds("fsdnoisy18k", "fsd50k", ("train", "test")))
def contrastive_ssl(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    pretrain_flag: str = "!manually_verified",
    architecture: str = "resnet18",
    width: float = 1.0,
    tps: bool = True,
    mix_back: bool = True,
    augmentations: list = AUGMENTATIONS,
    temperature: float = 0.2,
    pretrain_epochs: int = 500,
    pretrain_batch_size: int = 128,
    pretrain_learning_rate: float = 0.03,
    knn_k: int = 200,
    downstream_sets: list = DOWNSTREAM_SETS,
    downstream_epochs: int = 200,
    batch_size: int = 128,
    linear_learning_rate: float = 0.1,
    fine_tune_learning_rate: float = 0.01,
    scratch_learning_rate: float = 1e-3,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported_encoder=Model):
    """Contrastive self-supervised learning: an encoder pretrained with NT-Xent on the noisy train clips (labels unused),
    then kNN, linear evaluation and fine-tuning per downstream train set, next to training from scratch.

    Args:
        val_fraction: Share of each train set held out (by uploader) for validation.
        pretrain_flag: The dataset flag the pretraining clips need: "!manually_verified" is FSDnoisy18k's noisy
            set (the released config's); "" takes every train clip (a dataset without that flag).
        architecture: The encoder's architecture (resnet18, vgg_like, vgg41, vgg42, crnn).
        width: Filter-count multiplier of the encoder (1 = its published size).
        tps: Temporal proximity sampling: the two views are patches from two random positions of the clip
            (false: the same patch twice).
        mix_back: Mix each view with a background from another clip of the batch.
        augmentations: The views' augmentations, any of rrc, compander, noise, specaugment, shift (the released
            config uses the first three).
        temperature: NT-Xent's temperature.
        pretrain_epochs: Pretraining epochs (the rate x0.1 after 65% and 85% of them: 325 and 425 of 500).
        pretrain_batch_size: Pretraining batch size (clips; two views each).
        pretrain_learning_rate: Pretraining learning rate.
        knn_k: Neighbours of the kNN evaluation on the frozen embedding.
        downstream_sets: The downstream train sets: {"train_set": a name, "flag": the dataset flag its clips
            need ("" for every clip, "!flag" for its absence)}.
        downstream_epochs: Epochs of linear evaluation, fine-tuning and training from scratch (linear evaluation
            and fine-tuning: the rate x0.1 after 40% and 80% of them, weight decay 1e-4).
        batch_size: Batch size of the downstream training.
        linear_learning_rate: SGD's learning rate for linear evaluation (the encoder frozen).
        fine_tune_learning_rate: SGD's learning rate for fine-tuning the pretrained encoder.
        scratch_learning_rate: Adam's learning rate for the model trained from scratch.
    """
    seed = data.seed
    # Pretraining sees the noisy train set by default, its labels unused (the released config's train_on_clean: 0).
    unlabelled = select_train_set(manifest=data.manifest, source_splits=["train"], flag=pretrain_flag,
                                  val_fraction=val_fraction, seed=seed)
    unlabelled.set_display_name("unlabelled train set")
    clips = extract_features(manifest=unlabelled.outputs["split_manifest"], whole_clips=True,
                             feature_params=data.feature_params)
    clips.set_display_name("extract whole clips")
    pretrained = pretrain_contrastive(clips=clips.outputs["features"], architecture=architecture, width=width,
                                      tps=tps, mix_back=mix_back, augmentations=augmentations,
                                      temperature=temperature, epochs=pretrain_epochs,
                                      batch_size=pretrain_batch_size, learning_rate=pretrain_learning_rate, seed=seed)
    pretrained.set_display_name("contrastive pretraining")
    exported = export_model(model=pretrained.outputs["encoder"])
    exported.set_display_name("export the encoder (waveform in, embeddings out)")
    with dsl.ParallelFor(downstream_sets) as downstream:
        _, features = train_set_features(data, ["train"], downstream.flag, val_fraction)
        knn = evaluate_knn(encoder=pretrained.outputs["encoder"], features=features.outputs["features"], k=knn_k,
                           variant=downstream)
        evaluations = {}
        for method, freeze, rate in (("linear", True, linear_learning_rate),
                                     ("fine_tuned", False, fine_tune_learning_rate)):
            model = train_on_encoder(encoder=pretrained.outputs["encoder"], features=features.outputs["features"],
                                     freeze=freeze, epochs=downstream_epochs, batch_size=batch_size,
                                     learning_rate=rate, optimizer="sgd", seed=seed)
            evaluations[method] = evaluate_single_label(
                model=model.outputs["model"], features=features.outputs["features"], split="test",
                aggregation="mean", variant=downstream, method=method)
        scratch = train_classifier(features=features.outputs["features"], architecture=architecture, width=width,
                                   epochs=downstream_epochs, batch_size=batch_size,
                                   learning_rate=scratch_learning_rate, seed=seed, mixed_precision=False, loss="cce")
        evaluations["scratch"] = evaluate_single_label(
            model=scratch.outputs["model"], features=features.outputs["features"], split="test", aggregation="mean",
            variant=downstream, method="scratch")
    summary = summarize_contrastive(knn=dsl.Collected(knn.outputs["result"]),
                                    linear=dsl.Collected(evaluations["linear"].outputs["result"]),
                                    fine_tuned=dsl.Collected(evaluations["fine_tuned"].outputs["result"]),
                                    scratch=dsl.Collected(evaluations["scratch"].outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, exported_encoder=Model)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"],
                   exported_encoder=exported.outputs["exported"])
