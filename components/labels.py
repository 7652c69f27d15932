"""Label-enhancement components: score a feature set with a model (Beam RunInference), relabel missing
labels with loss masks, and the missing-labels study's evaluation and summary."""
from typing import List

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import PROJECT_IMAGE_PLACEHOLDER


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def score_clips(model: Input[Model], features: Input[Dataset], split: str, aggregation: str, beam_runner: str,
                beam_options: list, scores: Output[Dataset]):
    """Beam RunInference: the model's clip scores (mean or geometric mean of patches) for every clip."""
    from beam_jobs.runner import artifact_location
    from beam_jobs.scoring import score_clips as score

    summary = score(artifact_location(model, beam_runner), artifact_location(features, beam_runner),
                    artifact_location(scores, beam_runner), split, aggregation,
                    [f"--runner={beam_runner}", *beam_options])
    scores.metadata.update(clips=summary["clips"], patches=summary["patches"], split=split, aggregation=aggregation)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def relabel_missing(features: Input[Dataset], manifest: Input[Dataset], scores: Input[Dataset], tc_percent: float,
                    beam_runner: str, beam_options: list, relabelled: Output[Dataset]):
    """Beam job: per class, masks the loss of the top tc % teacher-scored implicit negatives."""
    from beam_jobs.relabel import relabel
    from beam_jobs.runner import artifact_location

    report = relabel(*(artifact_location(artifact, beam_runner) for artifact in (features, manifest, scores)),
                     tc_percent, artifact_location(relabelled, beam_runner),
                     beam_args=[f"--runner={beam_runner}", *beam_options])
    relabelled.metadata.update({key: value for key, value in report.items() if key != "classes"})


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def evaluate_student(model: Input[Model], relabelled: Input[Dataset], result: Output[Dataset]):
    """Eval metrics of one student, with what its relabelling flagged."""
    import json

    from beam_jobs.relabel import REPORT_FILE
    from keras_models.input import load_feature_set
    from keras_models.missing_labels import evaluate_student as evaluate

    with open(f"{relabelled.path}/{REPORT_FILE}") as handle:
        report = json.load(handle)
    train_clips = load_feature_set(relabelled.path).counts["train"]["written"]
    row = evaluate(model.path, relabelled.path, report, train_clips)
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def summarize_missing_labels(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown],
                             page: Output[HTML]):
    """Table and plot of the students' eval mAP and d' against tc."""
    from keras_models.evaluate import read_result_rows
    from keras_models.missing_labels import summary_reports

    rows = read_result_rows([artifact.path for artifact in results])
    markdown, html, _ = summary_reports(rows)
    for row in rows:
        metrics.log_metric(f"tc{row['tc_percent']:g}_mAP", row["mAP"])
        metrics.log_metric(f"tc{row['tc_percent']:g}_d_prime", row["d_prime"])
    with open(report.path, "w") as handle:
        handle.write(markdown)
    with open(page.path, "w") as handle:
        handle.write(html)


@dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)
def prune_train_set(features: Input[Dataset], scores: Input[Dataset], percentile: float, loss: str,
                    loss_params: dict, beam_runner: str, beam_options: list, pruned: Output[Dataset]):
    """Beam job: drops the train clips whose loss (under the scoring checkpoint) is above the percentile."""
    from beam_jobs.prune import prune
    from beam_jobs.runner import artifact_location
    from keras_models.losses import LossParams

    report = prune(artifact_location(features, beam_runner), artifact_location(scores, beam_runner),
                   artifact_location(pruned, beam_runner), percentile, LossParams.from_values(loss, loss_params),
                   beam_args=[f"--runner={beam_runner}", *beam_options])
    pruned.metadata.update(percentile=percentile, threshold=report["threshold"], kept=report["kept"],
                           pruned=report["pruned"])
