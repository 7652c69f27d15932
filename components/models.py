"""Model components: train a classifier (from scratch or warm-started), evaluate it at clip level."""
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components import GPU, LIGHT, component


@component(GPU)
def train_classifier(features: Input[Dataset], architecture: str, width: float, epochs: int, batch_size: int,
                     learning_rate: float, seed: int, mixed_precision: bool, model: Output[Model],
                     curves: Output[HTML], pooling: str = "max", mixup_alpha: float = 0.0, loss: str = "bce",
                     loss_params: dict = {}, lr_patience: int = 5, early_stopping_patience: int = 15,
                     mixup_warmup_epochs: int = 0):
    """Trains from scratch with a loss of keras_models.losses (`loss_params`: its hyperparameters); keeps
    the best model by clip-level validation mAP (accuracy for single-label losses); `curves`: the training
    curves page."""
    from keras_models.losses import LossParams
    from keras_models.model_folder import resumable
    from keras_models.model_pages import training_page
    from keras_models.train import TrainParams, train_classifier as train

    with resumable(model.path, model.uri) as mirror:  # a retried pod resumes from the last finished epoch
        summary = train(features.path, model.path, TrainParams(
            architecture=architecture, width=width, pooling=pooling, mixup_alpha=mixup_alpha,
            mixup_warmup_epochs=mixup_warmup_epochs, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, seed=seed, mixed_precision=mixed_precision,
            loss=LossParams.from_values(loss, loss_params), lr_patience=lr_patience,
            early_stopping_patience=early_stopping_patience), extra_callbacks=mirror)
    model.metadata.update(framework="keras", loss=loss, **summary)
    with open(curves.path, "w") as handle:
        handle.write(training_page(model.path, f"Training: {architecture}, {loss}"))


@component(GPU)
def fine_tune_classifier(initial_model: Input[Model], features: Input[Dataset], epochs: int, batch_size: int,
                         learning_rate: float, seed: int, mixed_precision: bool, model: Output[Model],
                         curves: Output[HTML], loss: str = "bce", loss_params: dict = {}, mixup_alpha: float = 0.0,
                         lr_patience: int = 5, early_stopping_patience: int = 15, lr_decay: float = 1.0):
    """Continues training `initial_model` on `features` (warm start; the architecture is the model's);
    `lr_decay`: the rate x this every 2.5 epochs (1 = none)."""
    from keras_models.losses import LossParams
    from keras_models.model_folder import resumable
    from keras_models.model_pages import training_page
    from keras_models.train import TrainParams, train_classifier as train

    with resumable(model.path, model.uri) as mirror:
        summary = train(features.path, model.path, TrainParams(
            mixup_alpha=mixup_alpha, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
            mixed_precision=mixed_precision, loss=LossParams.from_values(loss, loss_params), lr_patience=lr_patience,
            early_stopping_patience=early_stopping_patience, lr_decay=lr_decay), initial_model_dir=initial_model.path,
            extra_callbacks=mirror)
    model.metadata.update(framework="keras", loss=loss, warm_start=initial_model.uri, **summary)
    with open(curves.path, "w") as handle:
        handle.write(training_page(model.path, f"Training continued from {initial_model.uri}"))


@component(LIGHT)
def evaluate_classifier(model: Input[Model], features: Input[Dataset], split: str, metrics: Output[Metrics],
                        report: Output[Markdown], result: Output[Dataset], page: Output[HTML], title: str = "",
                        variant: dict = {}):
    """Clip-level mAP, d', lwlrap and a per-class table (shown in the KFP UI); `page`: per-class AP and the
    precision-recall curves of the best and worst classes; `variant` labels the result row (and, without a
    `title`, the report)."""
    import json

    from keras_models.evaluate import evaluate_classifier as evaluate
    from keras_models.model_pages import evaluation_page, model_selection

    evaluation = evaluate(model.path, features.path, split)
    for name, value in evaluation.finite_scalars.items():
        metrics.log_metric(name, value)
    title = title or ", ".join(f"{key} {value}" for key, value in variant.items())
    with open(report.path, "w") as handle:
        handle.write(evaluation.markdown(title, model_selection(model.path)))
    with open(page.path, "w") as handle:
        handle.write(evaluation_page(evaluation, title, model.path))
    with open(result.path, "w") as handle:
        json.dump({**variant, **evaluation.scalars, "clips": evaluation.clips}, handle, indent=1)


@component(LIGHT)
def evaluate_single_label(model: Input[Model], features: Input[Dataset], split: str, aggregation: str,
                          variant: dict, metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                          report: Output[Markdown], result: Output[Dataset], page: Output[HTML], method: str = ""):
    """Accuracy, balanced accuracy, per-class accuracy and the confusion matrix of a single-label model;
    `variant` (and `method`, if given) label its result row."""
    import json

    from keras_models.evaluate import evaluate_single_label as evaluate
    from keras_models.model_pages import model_selection, single_label_page

    evaluation = evaluate(model.path, features.path, split, aggregation)
    variant = {**variant, **({"method": method} if method else {})}
    for name, value in evaluation.scalars.items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(list(evaluation.vocabulary), evaluation.metrics["confusion_matrix"].tolist())
    title = ", ".join(f"{key} {value}" for key, value in variant.items())
    with open(report.path, "w") as handle:
        handle.write(evaluation.markdown(title, model_selection(model.path)))
    with open(page.path, "w") as handle:
        handle.write(single_label_page(evaluation, title, model.path))
    row = {**variant, **evaluation.scalars, "clips": evaluation.clips}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@component(LIGHT)
def evaluate_shift_invariance(model: Input[Model], features: Input[Dataset], pooling: str, mixup_alpha: float,
                              result: Output[Dataset]):
    """mAP, d' and classification consistency under time/frequency shifts of one model variant."""
    import json

    from keras_models.shift import evaluate_shift_invariance as evaluate

    row = {"pooling": pooling, "mixup_alpha": mixup_alpha, **evaluate(model.path, features.path)}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(pooling=pooling, mixup_alpha=mixup_alpha, mAP=row["mAP"])
