"""Tag audio with a trained model: a model (or export) folder and audio files -> score table and report.

`model_uri`: a classifier folder (a `train-classifier` task's `model` output) or an export folder (an
`export-model` task's `exported` output), as a path or URI (gs://, minio://...); `audio`: files, folders or
object-store prefixes. Both are required: this pipeline has no synthetic default.
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Model

from components.data import fingerprint_locations
from components.tagging import tag_audio_files
from pipelines.experiment import experiment


@experiment(name="tag-audio")
def tag_audio(
    model_uri: str,
    audio: list,
    timestamps: bool = False,
    aggregation: str = "mean",
) -> NamedTuple("Outputs", scores=Dataset, report=Markdown):
    """Tag audio with a trained model: a model (or export) folder and audio files -> score table and report.

    Args:
        model_uri: A classifier folder (a train-classifier task's model output) or an export folder (an
            export-model task's output), as a path or URI (gs://, minio://, ...).
        audio: Audio files, folders or object-store prefixes to tag.
        timestamps: Also write a score row per patch, with its start and end times.
        aggregation: Patch scores -> clip score: mean or geometric_mean.
    """
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    model.set_display_name("model")
    audio_files = fingerprint_locations(locations=audio)
    audio_files.set_display_name("fingerprint the audio's files")
    model_files = fingerprint_locations(locations=[model_uri])
    model_files.set_display_name("fingerprint the model's files")
    tagged = tag_audio_files(model=model.output, audio=audio, timestamps=timestamps, aggregation=aggregation,
                             audio_fingerprint=audio_files.output, model_fingerprint=model_files.output)
    tagged.set_display_name("tag audio (Beam)")
    outputs = NamedTuple("Outputs", scores=Dataset, report=Markdown)
    return outputs(scores=tagged.outputs["scores"], report=tagged.outputs["report"])
