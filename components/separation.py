"""Separation-based self-supervised components: MixIT separator training and evaluation, separated channels
(Beam) and pretraining with SM / CP proxy tasks."""
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components import BEAM, GPU, LIGHT, component


@component(GPU)
def train_separator(manifest: Input[Dataset], channels: int, steps: int, checkpoint_steps: list,
                    segment_seconds: float, batch_size: int, learning_rate: float, seed: int,
                    separator: Output[Model], feature_params: str = "fsd50k"):
    """MixIT training of an M-channel masking separator on mixtures of two train clips (at the features'
    sample rate); checkpoints at `checkpoint_steps`."""
    from beam_jobs.contracts.params import FeatureParams
    from keras_models.model_folder import resumable
    from keras_models.separation import ManifestWaveforms, SeparatorParams, train_separator as train

    params = SeparatorParams(channels=channels, steps=steps, checkpoint_steps=tuple(checkpoint_steps),
                             segment_seconds=segment_seconds, batch_size=batch_size, learning_rate=learning_rate,
                             seed=seed, sample_rate=FeatureParams.resolve(feature_params).sample_rate)
    with resumable(separator.path, separator.uri) as mirror:
        summary = train(ManifestWaveforms(manifest.path, "train", params.sample_rate), separator.path, params,
                        extra_callbacks=mirror)
    separator.metadata.update(framework="keras", **summary)


@component(LIGHT)
def evaluate_separator(separator: Input[Model], mixtures: int, metrics: Output[Metrics], report: Output[Markdown],
                       result: Output[Dataset]):
    """SI-SNR improvement of every checkpoint on synthetic mixtures with known sources."""
    import json

    from beam_jobs.synthetic import known_source_mixtures
    from keras_models.separation import evaluate_separation, read_params, separation_markdown

    rows = evaluate_separation(separator.path, known_source_mixtures(mixtures, read_params(separator.path).sample_rate))
    for row in rows:
        metrics.log_metric(f"step_{row['step']}_mean_si_snri_db", row["mean_si_snri"])
    with open(report.path, "w") as handle:
        handle.write(separation_markdown(rows, separator.metadata))
    with open(result.path, "w") as handle:
        json.dump(rows, handle, indent=1)


@component(BEAM)
def separate_channels(manifest: Input[Dataset], separator: Input[Model], steps: list, beam_runner: str,
                      beam_options: list, separated: Output[Dataset], feature_params: str = "fsd50k"):
    """Beam job on the train split (what pretraining reads): whole-clip log-mels plus the log-mels of the
    channels separated by each checkpoint in `steps` ([] = every saved checkpoint)."""
    import dataclasses

    from beam_jobs.contracts.params import FeatureParams
    from beam_jobs.extract import extract
    from beam_jobs.runner import BeamSettings
    from beam_jobs.separate import SeparationSpec
    from keras_models.separation import read_params

    beam = BeamSettings(beam_runner, beam_options)
    spec = SeparationSpec(separator.path, tuple(steps) or read_params(separator.path).checkpoint_steps)
    params = dataclasses.replace(FeatureParams.resolve(feature_params), whole_clips=True)
    counts = extract(beam.location(manifest), beam.location(separated), params,
                     beam_args=beam.args, separation=spec, splits=("train",))
    separated.metadata.update(counts=counts, separator_steps=list(spec.steps))


@component(GPU)
def pretrain_separation_ssl(separated: Input[Dataset], setting: dict, cp_weight: float, tps: bool, specaugment: bool,
                            architecture: str, width: float, temperature: float, epochs: int, batch_size: int,
                            learning_rate: float, seed: int, encoder: Output[Model], curves: Output[HTML]):
    """Pretrains an encoder with the setting's proxy tasks (sm, cp, sm+cp) on mixture-vs-channel or
    mixture-vs-mixture views."""
    from keras_models.model_folder import resumable
    from keras_models.model_pages import training_page
    from keras_models.separation_ssl import SeparationSSLParams, pretrain_separation_ssl as pretrain

    with resumable(encoder.path, encoder.uri) as mirror:
        summary = pretrain(separated.path, encoder.path, SeparationSSLParams.from_setting(
            setting, cp_weight=cp_weight, tps=tps, specaugment=specaugment, architecture=architecture, width=width,
            temperature=temperature, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed),
            extra_callbacks=mirror)
    encoder.metadata.update(framework="keras", **setting, **summary)
    with open(curves.path, "w") as handle:
        handle.write(training_page(encoder.path, f"Separation-based pretraining: {setting.get('name', setting)}"))
