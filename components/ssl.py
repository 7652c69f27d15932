"""Self-supervised components: contrastive pretraining, kNN evaluation, training on a pretrained encoder."""
from kfp.dsl import HTML, Dataset, Input, Model, Output

from components import GPU, LIGHT, component


@component(GPU)
def pretrain_contrastive(clips: Input[Dataset], architecture: str, width: float, tps: bool, mix_back: bool,
                         augmentations: list, temperature: float, epochs: int, batch_size: int,
                         learning_rate: float, seed: int, encoder: Output[Model], curves: Output[HTML]):
    """NT-Xent pretraining of an encoder on the unlabelled train clips (whole-clip features)."""
    from keras_models.contrastive import ContrastiveParams, pretrain_contrastive as pretrain
    from keras_models.model_folder import resumable
    from keras_models.model_pages import training_page

    with resumable(encoder.path, encoder.uri) as mirror:
        summary = pretrain(clips.path, encoder.path, ContrastiveParams(
            architecture=architecture, width=width, tps=tps, mix_back=mix_back, augmentations=tuple(augmentations),
            temperature=temperature, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed),
            extra_callbacks=mirror)
    encoder.metadata.update(framework="keras", **summary)
    with open(curves.path, "w") as handle:
        handle.write(training_page(encoder.path, "Contrastive pretraining (NT-Xent)"))


@component(LIGHT)
def evaluate_knn(encoder: Input[Model], features: Input[Dataset], k: int, variant: dict, result: Output[Dataset]):
    """kNN on the frozen embedding: train patches vote for each test clip."""
    import json

    from keras_models.contrastive import knn_evaluate

    row = {**variant, "method": "knn", **knn_evaluate(encoder.path, features.path, k)}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@component(GPU)
def train_on_encoder(encoder: Input[Model], features: Input[Dataset], freeze: bool, epochs: int, batch_size: int,
                     learning_rate: float, optimizer: str, seed: int, model: Output[Model], curves: Output[HTML],
                     loss: str = "cce", head_hidden_units: int = 0):
    """A classifier on a pretrained encoder: frozen (linear evaluation; with `head_hidden_units`, a shallow
    classifier with one hidden layer) or trained end to end (fine-tuning)."""
    from keras_models.contrastive import DOWNSTREAM_SGD
    from keras_models.losses import LossParams
    from keras_models.model_folder import resumable
    from keras_models.model_pages import training_page
    from keras_models.train import TrainParams, train_classifier

    with resumable(model.path, model.uri) as mirror:
        summary = train_classifier(features.path, model.path, TrainParams(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, seed=seed,
            loss=LossParams(loss), head_hidden_units=head_hidden_units,
            **(DOWNSTREAM_SGD if optimizer == "sgd" else {})),
            initial_encoder_dir=encoder.path, freeze_encoder=freeze, extra_callbacks=mirror)
    model.metadata.update(framework="keras", frozen_encoder=freeze, **summary)
    with open(curves.path, "w") as handle:
        handle.write(training_page(model.path, "Classifier on a pretrained encoder, "
                                                + ("frozen" if freeze else "fine-tuned")))
