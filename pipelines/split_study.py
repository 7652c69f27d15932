"""Split study: one model per dev-set split strategy, each evaluated on its val split and on eval.

Reproduces the FSD50K finding: ignoring within-class uploader contamination makes validation overly
optimistic; minimising it makes validation a good proxy for evaluation.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics

from components.data import split_dev_set, resplit_features
from components.studies import evaluate_split_strategy, summarize_split_study
from pipelines.experiment import DatasetNeeds, PreparedDataset, Training, experiment, train


@experiment(name="split-study",
            dataset=DatasetNeeds("fsd50k", "fsd50k", ("train", "eval")), training=Training())
def split_study(
    data: PreparedDataset,
    strategies: list = ["random", "iterative_stratification", "uploader"],
    val_fraction: float = 0.15,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown):
    """Split study: one model per train/val split strategy of the development set, each evaluated on its
    val split and on eval; shows how within-class uploader contamination makes validation optimistic.

    Args:
        strategies: The split strategies to compare: random, iterative_stratification, uploader.
        val_fraction: Share of the development clips that each strategy puts in val.
    """
    seed = data.seed
    with dsl.ParallelFor(strategies) as strategy:
        split = split_dev_set(manifest=data.manifest, strategy=strategy, val_fraction=val_fraction,
                              seed=seed)
        features = resplit_features(source=data.features, split_manifest=split.outputs["split_manifest"])
        model = train(data, features.outputs["features"])
        result = evaluate_split_strategy(model=model.outputs["model"], features=features.outputs["features"],
                                         split_manifest=split.outputs["split_manifest"])
    summary = summarize_split_study(results=dsl.Collected(result.outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"])
