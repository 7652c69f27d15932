"""Using a trained model: export it as a waveform tagger, tag audio files with it (Beam)."""
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components import GPU, LIGHT, component


@component(LIGHT)
def export_model(model: Input[Model], exported: Output[Model], aggregation: str = "mean", tflite: bool = False):
    """A classifier or encoder folder -> a self-contained SavedModel (+ .keras, optional TFLite) taking raw
    waveforms (keras_models.export)."""
    from keras_models.export import export

    description = export(model.path, exported.path, aggregation, tflite)
    exported.metadata.update(framework="tensorflow-savedmodel", sample_rate=description["sample_rate"],
                             classes=len(description["vocabulary"]), embedding_size=description["embedding_size"],
                             files=description["files"], source=model.uri)


@component(GPU)
def tag_audio_files(model: Input[Model], audio: list, timestamps: bool, aggregation: str, beam_runner: str,
                    beam_options: list, scores: Output[Dataset], report: Output[Markdown], audio_fingerprint: str = "",
                    model_fingerprint: str = ""):
    """Beam job (beam_jobs.tag): the score table of every audio file under `audio` (files, folders, object
    store prefixes), the files that could not be tagged with their reasons, and a report of the top labels.
    `audio_fingerprint`, `model_fingerprint`: their files (components.data.fingerprint_locations), so that KFP's
    cache serves this task only while neither changed."""
    from beam_jobs.runner import BeamSettings
    from beam_jobs.tag import tag_audio, tagging_report

    beam = BeamSettings(beam_runner, beam_options)
    summary = tag_audio(model.path, beam.location(scores), audio, timestamps=timestamps, aggregation=aggregation,
                        beam_args=beam.args)
    with open(report.path, "w") as handle:
        handle.write(tagging_report(beam.location(scores)))
    scores.metadata.update(**{key: value for key, value in summary.items() if key != "inputs"})
