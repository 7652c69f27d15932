"""Self-supervised components: contrastive pretraining, kNN evaluation, training on a pretrained encoder,
and the study's summary."""
from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import PROJECT_IMAGE_PLACEHOLDER


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def pretrain_contrastive(clips: Input[Dataset], architecture: str, width: float, tps: bool, mix_back: bool,
                         augmentations: list, temperature: float, epochs: int, batch_size: int,
                         learning_rate: float, seed: int, encoder: Output[Model]):
    """NT-Xent pretraining of an encoder on the unlabelled train clips (whole-clip features)."""
    from keras_models.contrastive import ContrastiveParams, pretrain_contrastive as pretrain

    summary = pretrain(clips.path, encoder.path, ContrastiveParams(
        architecture=architecture, width=width, tps=tps, mix_back=mix_back, augmentations=tuple(augmentations),
        temperature=temperature, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed))
    encoder.metadata.update(framework="keras", **summary)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_knn(encoder: Input[Model], features: Input[Dataset], k: int, variant: dict, result: Output[Dataset]):
    """kNN on the frozen embedding: train patches vote for each test clip."""
    import json

    from keras_models.contrastive import knn_evaluate

    row = {**variant, "method": "knn", **knn_evaluate(encoder.path, features.path, k)}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def train_on_encoder(encoder: Input[Model], features: Input[Dataset], freeze: bool, epochs: int, batch_size: int,
                     learning_rate: float, optimizer: str, seed: int, model: Output[Model], loss: str = "cce",
                     head_hidden_units: int = 0):
    """A classifier on a pretrained encoder: frozen (linear evaluation; with `head_hidden_units`, a shallow
    classifier with one hidden layer) or trained end to end (fine-tuning)."""
    from keras_models.losses import LossParams
    from keras_models.train import TrainParams, train_classifier

    summary = train_classifier(features.path, model.path, TrainParams(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, seed=seed,
        loss=LossParams(loss), head_hidden_units=head_hidden_units), initial_encoder_dir=encoder.path,
        freeze_encoder=freeze)
    model.metadata.update(framework="keras", frozen_encoder=freeze, **summary)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_contrastive(knn: Input[List[Dataset]], linear: Input[List[Dataset]], fine_tuned: Input[List[Dataset]],
                          scratch: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown]):
    """Balanced accuracy per downstream set: kNN, linear evaluation, fine-tuning, training from scratch."""
    from keras_models.contrastive import summary_markdown
    from keras_models.evaluate import read_result_rows

    rows = read_result_rows([artifact.path for group in (knn, linear, fine_tuned, scratch) for artifact in group])
    for row in rows:
        metrics.log_metric(f"{row['train_set']}_{row['method']}_balanced_accuracy", row["balanced_accuracy"])
    with open(report.path, "w") as handle:
        handle.write(summary_markdown(rows))
