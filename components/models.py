"""Model components: train a classifier, evaluate it at clip level."""
from typing import List

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components import PROJECT_IMAGE_PLACEHOLDER


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def train_classifier(features: Input[Dataset], architecture: str, width: float, epochs: int, batch_size: int,
                     learning_rate: float, seed: int, mixed_precision: bool, model: Output[Model],
                     pooling: str = "max", mixup_alpha: float = 0.0, loss: str = "bce", loss_params: dict = {}):
    """Trains from scratch with a loss of keras_models.losses (`loss_params`: its hyperparameters); keeps
    the best model by clip-level validation mAP (accuracy for single-label losses)."""
    from keras_models.losses import LossParams
    from keras_models.train import TrainParams, train_classifier as train

    summary = train(features.path, model.path, TrainParams(
        architecture=architecture, width=width, pooling=pooling, mixup_alpha=mixup_alpha, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, mixed_precision=mixed_precision,
        loss=LossParams.from_values(loss, loss_params)))
    model.metadata.update(framework="keras", loss=loss, **summary)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def fine_tune_classifier(initial_model: Input[Model], features: Input[Dataset], epochs: int, batch_size: int,
                         learning_rate: float, seed: int, mixed_precision: bool, model: Output[Model],
                         loss: str = "bce", loss_params: dict = {}, mixup_alpha: float = 0.0):
    """Continues training `initial_model` on `features` (warm start; the architecture is the model's)."""
    import json
    import os

    from keras_models.losses import LossParams
    from keras_models.train import TRAIN_PARAMS_FILE, TrainParams, train_classifier as train

    with open(os.path.join(initial_model.path, TRAIN_PARAMS_FILE)) as handle:
        initial = json.load(handle)
    summary = train(features.path, model.path, TrainParams(
        architecture=initial["architecture"], width=initial["width"], pooling=initial["pooling"],
        mixup_alpha=mixup_alpha, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        mixed_precision=mixed_precision, loss=LossParams.from_values(loss, loss_params)), initial_model_dir=initial_model.path)
    model.metadata.update(framework="keras", loss=loss, warm_start=initial_model.uri, **summary)


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
    from keras_models.evaluate import read_result_rows
    from keras_models.split_study import summary_markdown

    rows = read_result_rows([artifact.path for artifact in results])
    for row in rows:
        for key in ("val_mAP", "eval_mAP", "gap"):
            metrics.log_metric(f"{row['strategy']}_{key}", row[key])
    with open(report.path, "w") as handle:
        handle.write(summary_markdown(rows))


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_shift_invariance(model: Input[Model], features: Input[Dataset], pooling: str, mixup_alpha: float,
                              result: Output[Dataset]):
    """mAP, d' and classification consistency under time/frequency shifts of one model variant."""
    import json

    from keras_models.shift import evaluate_shift_invariance as evaluate

    row = {"pooling": pooling, "mixup_alpha": mixup_alpha, **evaluate(model.path, features.path)}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(pooling=pooling, mixup_alpha=mixup_alpha, mAP=row["mAP"])


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_shift_invariance(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown],
                               page: Output[HTML]):
    """Table of mAP, d' and consistency per variant, and the plot of consistency against shift size."""
    from keras_models.evaluate import read_result_rows
    from keras_models.shift import summary_reports

    rows = read_result_rows([artifact.path for artifact in results])
    markdown, html, _ = summary_reports(rows)
    for row in rows:
        name = row["pooling"] + (f"_mixup{row['mixup_alpha']:g}" if row["mixup_alpha"] else "")
        metrics.log_metric(f"{name}_mAP", row["mAP"])
        metrics.log_metric(f"{name}_consistency_t5", row["consistency"]["time"]["5"])
    with open(report.path, "w") as handle:
        handle.write(markdown)
    with open(page.path, "w") as handle:
        handle.write(html)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_single_label(model: Input[Model], features: Input[Dataset], split: str, aggregation: str,
                          variant: dict, metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                          report: Output[Markdown], result: Output[Dataset], method: str = ""):
    """Accuracy, balanced accuracy, per-class accuracy and the confusion matrix of a single-label model;
    `variant` (and `method`, if given) label its result row."""
    import json

    from keras_models.evaluate import evaluate_single_label as evaluate

    evaluation = evaluate(model.path, features.path, split, aggregation)
    variant = {**variant, **({"method": method} if method else {})}
    for name, value in evaluation.scalars.items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(list(evaluation.vocabulary), evaluation.metrics["confusion_matrix"].tolist())
    title = ", ".join(f"{key} {value}" for key, value in variant.items())
    with open(report.path, "w") as handle:
        handle.write(evaluation.markdown(title))
    row = {**variant, **evaluation.scalars, "clips": evaluation.clips}
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_noisy_labels(results: Input[List[Dataset]], no_selection: Input[Dataset], batch_discard: Input[Dataset],
                           pruning: Input[Dataset], metrics: Output[Metrics], report: Output[Markdown]):
    """One table: accuracy per train set x loss, and per instance-selection approach."""
    from keras_models.evaluate import read_result_rows
    from keras_models.noisy_labels import summary_markdown, variant_name

    rows = read_result_rows([artifact.path for artifact in (*results, no_selection, batch_discard, pruning)])
    for row in rows:
        metrics.log_metric(f"{variant_name(row)}_accuracy", row["accuracy"])
    with open(report.path, "w") as handle:
        handle.write(summary_markdown(rows))


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_dcase2019(noisy_only: Input[Metrics], noisy_then_curated: Input[Metrics], curated_only: Input[Metrics],
                        metrics: Output[Metrics], report: Output[Markdown]):
    """Test lwlrap and mAP of the three training schemes side by side."""
    rows = {"noisy only": noisy_only, "noisy then curated (warm start)": noisy_then_curated,
            "curated only": curated_only}
    lines = ["# DCASE2019 Task 2: test set", "", "| training | lwlrap | mAP |", "|---|---:|---:|"]
    for name, artifact in rows.items():
        lwlrap, average_precision = artifact.metadata["lwlrap"], artifact.metadata["mAP"]
        lines.append(f"| {name} | {lwlrap:.4f} | {average_precision:.4f} |")
        metrics.log_metric(f"{name.split(' (')[0].replace(' ', '_')}_lwlrap", lwlrap)
    with open(report.path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
