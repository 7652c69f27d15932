"""Shift invariance: VGG41 (or VGG42) with each subsampling pool, with and without mixup, compared on
mAP, d' and classification consistency under time and frequency shifts."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics

from components.models import evaluate_shift_invariance
from components.studies import summarize_shift_invariance
from pipelines.experiment import DatasetNeeds, PreparedDataset, Training, experiment, train

POOLINGS = ["max", "blurpool3", "blurpool5", "tlpf", "aps", "tlpf_aps"]
DEFAULT_VARIANTS = [{"pooling": pooling, "mixup_alpha": alpha} for pooling in POOLINGS for alpha in (0.0, 0.3)]


@experiment(name="shift-invariance",
            dataset=DatasetNeeds("fsd50k", "fsd50k", ("train", "val", "eval")), training=Training(architecture="vgg41"))
def shift_invariance(
    data: PreparedDataset,
    pooling_variants: list = DEFAULT_VARIANTS,
) -> NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML):
    """Shift invariance: one model per subsampling pool (max, BlurPool, TLPF, APS, TLPF+APS) with and without
    mixup, compared on mAP, d' and classification consistency under time and frequency shifts.

    Args:
        pooling_variants: One model per entry: {"pooling": max|blurpool3|blurpool5|tlpf|aps|aps_only|tlpf_aps,
            "mixup_alpha": 0 for none, else mixup's alpha}.
    """
    with dsl.ParallelFor(pooling_variants) as variant:
        model = train(data, data.features, pooling=variant.pooling, mixup_alpha=variant.mixup_alpha)
        result = evaluate_shift_invariance(model=model.outputs["model"], features=data.features,
                                           pooling=variant.pooling, mixup_alpha=variant.mixup_alpha)
    summary = summarize_shift_invariance(results=dsl.Collected(result.outputs["result"]))
    summary.set_display_name("summary")
    outputs = NamedTuple("Outputs", metrics=Metrics, report=Markdown, page=HTML)
    return outputs(metrics=summary.outputs["metrics"], report=summary.outputs["report"], page=summary.outputs["page"])
