"""Missing labels: a teacher scores the train set, the relabel job masks the loss of the top tc % implicit
negatives per class, a student trains on each enhanced label set; eval mAP and d' against tc.

AudioSet-style labels (explicit positives, explicit negatives, implicit negatives). `train_fraction`
below 1 keeps that share of the train clips, to show that smaller train sets gain more.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics

from components.data import split_dev_set, resplit_features
from components.labels import relabel_missing, score_clips
from components.studies import evaluate_student, summarize_missing_labels
from components.tagging import export_model
from pipelines.experiment import DatasetNeeds, PreparedDataset, Training, experiment, train

# 18 label sets with tc in [0, 20] % (the thesis' slides: the values themselves are not published), densest
# where the paper's boost happens (below 6 %)
TC_PERCENTS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0]


@experiment(name="missing-labels",
            dataset=DatasetNeeds("audioset", "fsd50k", ("train", "eval")), training=Training(architecture=None))
def missing_labels(
    data: PreparedDataset,
    val_fraction: float = 0.15,
    train_fraction: float = 1.0,
    tc_percents: list = TC_PERCENTS,
    teacher_architecture: str = "resnet50",
    student_architecture: str = "vgg_like",
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML):
    """Missing labels: a teacher scores the train set, the relabel job masks the loss of the top tc % implicit
    negatives per class, a student trains on each enhanced label set; eval mAP and d' against tc.

    Args:
        val_fraction: Share of the development clips held out (by uploader) for validation.
        train_fraction: Share of the train clips kept (0.2: the paper's smaller train set, 1:5, which gains more).
        tc_percents: The tc values: the share (%) of each class's implicit negatives, top-scored by the teacher,
            whose loss is masked.
        teacher_architecture: The teacher's architecture (the paper's: resnet50; vgg_like, vgg41, vgg42,
            resnet18, crnn, ...).
        student_architecture: The students' architecture.
    """
    seed = data.seed
    split = split_dev_set(manifest=data.manifest, strategy="uploader", val_fraction=val_fraction,
                          seed=seed, train_fraction=train_fraction)
    split.set_display_name("train/val split")
    features = resplit_features(source=data.features, split_manifest=split.outputs["split_manifest"])
    features.set_display_name("train/val features (re-split)")
    teacher = train(data, features.outputs["features"], architecture=teacher_architecture)
    teacher.set_display_name("teacher")
    scores = score_clips(model=teacher.outputs["model"], features=features.outputs["features"], split="train",
                         aggregation="mean")
    scores.set_display_name("teacher scoring")
    with dsl.ParallelFor(tc_percents) as tc_percent:
        relabelled = relabel_missing(features=features.outputs["features"], manifest=split.outputs["split_manifest"],
                                     scores=scores.outputs["scores"], tc_percent=tc_percent)
        student = train(data, relabelled.outputs["relabelled"], architecture=student_architecture, loss="masked_bce")
        student.set_display_name("student")
        exported = export_model(model=student.outputs["model"])
        exported.set_display_name("export the student")
        result = evaluate_student(model=student.outputs["model"], relabelled=relabelled.outputs["relabelled"])
    summary = summarize_missing_labels(results=dsl.Collected(result.outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"], page=summary.outputs["page"])
