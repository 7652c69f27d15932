"""Label-enhancement components: score a feature set with a model (Beam RunInference), relabel missing
labels with loss masks, prune a train set by loss (Beam)."""
from kfp.dsl import Dataset, Input, Model, Output

from components import BEAM, GPU, component


@component(GPU)
def score_clips(model: Input[Model], features: Input[Dataset], split: str, aggregation: str, beam_runner: str,
                beam_options: list, scores: Output[Dataset]):
    """Beam RunInference: the model's clip scores (mean or geometric mean of patches) for every clip."""
    from beam_jobs.runner import BeamSettings
    from beam_jobs.scoring import score_clips as score

    beam = BeamSettings(beam_runner, beam_options)
    summary = score(beam.location(model), beam.location(features), beam.location(scores), split, aggregation,
                    beam.args)
    scores.metadata.update(clips=summary["clips"], patches=summary["patches"], split=split, aggregation=aggregation)


@component(BEAM)
def relabel_missing(features: Input[Dataset], manifest: Input[Dataset], scores: Input[Dataset], tc_percent: float,
                    beam_runner: str, beam_options: list, relabelled: Output[Dataset]):
    """Beam job: per class, masks the loss of the top tc % teacher-scored implicit negatives."""
    from beam_jobs.relabel import relabel
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    report = relabel(*(beam.location(artifact) for artifact in (features, manifest, scores)), tc_percent,
                     beam.location(relabelled), beam_args=beam.args)
    relabelled.metadata.update({key: value for key, value in report.items() if key != "classes"})


@component(BEAM)
def prune_train_set(features: Input[Dataset], scores: Input[Dataset], percentile: float, loss: str,
                    loss_params: dict, beam_runner: str, beam_options: list, pruned: Output[Dataset]):
    """Beam job: drops the train clips whose loss (under the scoring checkpoint) is above the percentile."""
    from beam_jobs.prune import prune
    from beam_jobs.runner import BeamSettings
    from keras_models.losses import LossParams

    beam = BeamSettings(beam_runner, beam_options)
    report = prune(beam.location(features), beam.location(scores), beam.location(pruned), percentile,
                   LossParams.from_values(loss, loss_params), beam_args=beam.args)
    pruned.metadata.update(percentile=percentile, threshold=report["threshold"], kept=report["kept"],
                           pruned=report["pruned"])
