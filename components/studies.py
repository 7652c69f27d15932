"""Study components: each study's per-variant result rows and its summary table (Markdown, Metrics and,
where the study has a plot, an HTML page) for the KFP UI."""
from typing import List

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import LIGHT, component


@component(LIGHT)
def evaluate_split_strategy(model: Input[Model], features: Input[Dataset], split_manifest: Input[Dataset],
                            result: Output[Dataset]):
    """Val and eval mAP of one split strategy's model, with the split's contamination counts."""
    import json

    from beam_jobs.splits import read_split_report
    from keras_models.study_reports import split_strategy_row

    row = split_strategy_row(model.path, features.path, read_split_report(split_manifest.path))
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@component(LIGHT)
def summarize_split_study(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown]):
    """The study's table (val mAP, eval mAP and gap per strategy) for the KFP UI."""
    from keras_models.study_reports import read_result_rows, split_study_markdown

    rows = read_result_rows([artifact.path for artifact in results])
    for row in rows:
        for key in ("val_mAP", "eval_mAP", "gap"):
            metrics.log_metric(f"{row['strategy']}_{key}", row[key])
    with open(report.path, "w") as handle:
        handle.write(split_study_markdown(rows))


@component(LIGHT)
def summarize_shift_invariance(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown],
                               page: Output[HTML]):
    """Table of mAP, d' and consistency per variant, and the plot of consistency against shift size."""
    from keras_models.study_reports import read_result_rows, shift_invariance_reports

    rows = read_result_rows([artifact.path for artifact in results])
    markdown, html, _ = shift_invariance_reports(rows)
    for row in rows:
        name = row["pooling"] + (f"_mixup{row['mixup_alpha']:g}" if row["mixup_alpha"] else "")
        metrics.log_metric(f"{name}_mAP", row["mAP"])
        metrics.log_metric(f"{name}_consistency_t5", row["consistency"]["time"]["5"])
    with open(report.path, "w") as handle:
        handle.write(markdown)
    with open(page.path, "w") as handle:
        handle.write(html)


@component(LIGHT)
def summarize_noisy_labels(results: Input[List[Dataset]], no_selection: Input[Dataset], batch_discard: Input[Dataset],
                           pruning: Input[Dataset], metrics: Output[Metrics], report: Output[Markdown]):
    """One table: accuracy per train set x loss, and per instance-selection approach."""
    from keras_models.study_reports import noisy_labels_markdown, read_result_rows, variant_name

    rows = read_result_rows([artifact.path for artifact in (*results, no_selection, batch_discard, pruning)])
    for row in rows:
        metrics.log_metric(f"{variant_name(row)}_accuracy", row["accuracy"])
    with open(report.path, "w") as handle:
        handle.write(noisy_labels_markdown(rows))


@component(LIGHT)
def summarize_dcase2019(noisy_only: Input[Metrics], noisy_then_curated: Input[Metrics], curated_only: Input[Metrics],
                        metrics: Output[Metrics], report: Output[Markdown]):
    """Test lwlrap and mAP of the three training schemes side by side."""
    from keras_models.study_reports import dcase2019_markdown

    rows = {"noisy only": noisy_only.metadata, "noisy then curated (warm start)": noisy_then_curated.metadata,
            "curated only": curated_only.metadata}
    for name, values in rows.items():
        metrics.log_metric(f"{name.split(' (')[0].replace(' ', '_')}_lwlrap", values["lwlrap"])
    with open(report.path, "w") as handle:
        handle.write(dcase2019_markdown(rows))


@component(LIGHT)
def summarize_dcase2018(all_result: Input[Dataset], all_train_set: Input[Dataset], verified_result: Input[Dataset],
                        verified_train_set: Input[Dataset], metrics: Output[Metrics], report: Output[Markdown]):
    """Test MAP@3 and accuracy of the model trained on all train clips and of the one trained on the verified."""
    from keras_models.study_reports import dcase2018_markdown, read_result_rows

    rows = [{**row, "train_clips": int(train_set.metadata["train_clips"])} for row, train_set in zip(
        read_result_rows([all_result.path, verified_result.path]), (all_train_set, verified_train_set))]
    for row in rows:
        metrics.log_metric(f"{row['train_set']}_map_at_3", row["map_at_3"])
    with open(report.path, "w") as handle:
        handle.write(dcase2018_markdown(rows))


@component(LIGHT)
def evaluate_student(model: Input[Model], relabelled: Input[Dataset], result: Output[Dataset]):
    """Eval metrics of one missing-labels student, with what its relabelling flagged."""
    import json

    from beam_jobs.contracts.feature_set import load_feature_set
    from beam_jobs.relabel import read_report
    from keras_models.study_reports import student_row

    row = student_row(model.path, relabelled.path, read_report(relabelled.path),
                      load_feature_set(relabelled.path).clips("train"))
    with open(result.path, "w") as handle:
        json.dump(row, handle, indent=1)
    result.metadata.update(row)


@component(LIGHT)
def summarize_missing_labels(results: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown],
                             page: Output[HTML]):
    """Table and plot of the students' eval mAP and d' against tc."""
    from keras_models.study_reports import missing_labels_reports, read_result_rows

    rows = read_result_rows([artifact.path for artifact in results])
    markdown, html, _ = missing_labels_reports(rows)
    for row in rows:
        metrics.log_metric(f"tc{row['tc_percent']:g}_mAP", row["mAP"])
        metrics.log_metric(f"tc{row['tc_percent']:g}_d_prime", row["d_prime"])
    with open(report.path, "w") as handle:
        handle.write(markdown)
    with open(page.path, "w") as handle:
        handle.write(html)


@component(LIGHT)
def summarize_contrastive(knn: Input[List[Dataset]], linear: Input[List[Dataset]], fine_tuned: Input[List[Dataset]],
                          scratch: Input[List[Dataset]], metrics: Output[Metrics], report: Output[Markdown]):
    """Balanced accuracy per downstream set: kNN, linear evaluation, fine-tuning, training from scratch."""
    from keras_models.study_reports import contrastive_markdown, read_result_rows

    rows = read_result_rows([artifact.path for group in (knn, linear, fine_tuned, scratch) for artifact in group])
    for row in rows:
        metrics.log_metric(f"{row['train_set']}_{row['method']}_balanced_accuracy", row["balanced_accuracy"])
    with open(report.path, "w") as handle:
        handle.write(contrastive_markdown(rows))


@component(LIGHT)
def summarize_separation_ssl(separation: Input[Dataset], results: Input[List[Dataset]], metrics: Output[Metrics],
                             report: Output[Markdown]):
    """mAP and d' per proxy-task setting, next to the separator's SI-SNR improvement per checkpoint."""
    import json

    from keras_models.study_reports import read_result_rows, separation_ssl_markdown

    rows = read_result_rows([artifact.path for artifact in results])
    with open(separation.path) as handle:
        separation_rows = json.load(handle)
    for row in rows:
        metrics.log_metric(f"{row['name']}_mAP", row["mAP"])
    with open(report.path, "w") as handle:
        handle.write(separation_ssl_markdown(rows, separation_rows))
