"""Model components: train a classifier, evaluate it at clip level."""
from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import PROJECT_IMAGE_PLACEHOLDER


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def train_classifier(features: Input[Dataset], architecture: str, width: float, epochs: int, batch_size: int,
                     learning_rate: float, seed: int, mixed_precision: bool, model: Output[Model]):
    """Trains with binary cross-entropy; keeps the best model by clip-level validation mAP."""
    from keras_models.train import TrainParams, train_classifier as train

    summary = train(features.path, model.path, TrainParams(
        architecture=architecture, width=width, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, mixed_precision=mixed_precision))
    model.metadata.update(framework="keras", **summary)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_classifier(model: Input[Model], features: Input[Dataset], split: str, title: str,
                        metrics: Output[Metrics], report: Output[Markdown]):
    """Clip-level mAP, d', lwlrap and a per-class table (shown in the KFP UI)."""
    from keras_models.evaluate import evaluate_classifier as evaluate

    evaluation = evaluate(model.path, features.path, split)
    for name, value in evaluation.finite_scalars.items():
        metrics.log_metric(name, value)
    with open(report.path, "w") as handle:
        handle.write(evaluation.markdown(title))


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_split_strategy(model: Input[Model], features: Input[Dataset], split_manifest: Input[Dataset],
                            result: Output[Dataset]):
    """Val and eval mAP of one split strategy's model, with the split's contamination counts."""
    import json

    from keras_models.split_study import evaluate_strategy

    with open(split_manifest.path + "/split_report.json") as handle:
        row = evaluate_strategy(model.path, features.path, json.load(handle))
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_split_study(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown]):
    """The study's table (val mAP, eval mAP and gap per strategy) for the KFP UI."""
    import json

    from keras_models.split_study import summary_markdown

    rows = []
    for artifact in results:
        with open(artifact.path) as handle:
            rows.append(json.load(handle))
    for row in rows:
        for key in ("val_mAP", "eval_mAP", "gap"):
            metrics.log_metric(f"{row['strategy']}_{key}", row[key])
    with open(report.path, "w") as handle:
        handle.write(summary_markdown(rows))
