"""Dataset-creation components: nominate candidate labels, validate them with rater votes, assemble a
dataset in a released layout (beam_jobs.creation)."""
from kfp.dsl import Dataset, Input, Markdown, Output

from components import BEAM, component


@component(BEAM)
def nominate_candidates(raw_dir: str, synthetic_clips: int, seed: int, nomination_fields: list, beam_runner: str,
                        beam_options: list, nomination: Output[Dataset], report: Output[Markdown],
                        fingerprint: str = ""):
    """Beam job: candidate labels of every clip from its tags and text (empty `raw_dir`: generates
    synthetic raw material, whose truth is known, inside the output). `fingerprint`: the files under
    `raw_dir` (components.data.fingerprint_locations), so that KFP's cache serves this task only while they
    are unchanged."""
    from beam_jobs.creation import nominate, synthetic_raw
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    output, generated = beam.location(nomination), "synthetic_raw"
    root = raw_dir or synthetic_raw.generate(f"{output}/{generated}", synthetic_clips, seed, beam.args)
    result = nominate.nominate(root, output, nomination_fields, beam.args, keep=() if raw_dir else (generated,))
    with open(report.path, "w") as handle:
        handle.write(nominate.nomination_markdown(result))
    nomination.metadata.update(raw_dir=root, clips=result["clips"], candidates=result["candidates"])


@component(BEAM)
def validate_candidates(nomination: Input[Dataset], min_agreement: int, beam_runner: str, beam_options: list,
                        validation: Output[Dataset], report: Output[Markdown]):
    """Beam job: rater votes aggregated into accepted / rejected / unresolved labels, with agreement."""
    from beam_jobs.creation import validate
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    result = validate.validate(beam.location(nomination), beam.location(validation), min_agreement, beam.args)
    with open(report.path, "w") as handle:
        handle.write(validate.validation_markdown(result))
    validation.metadata.update(decisions=result["decisions"], alpha=result["alpha"])


@component(BEAM)
def assemble_dataset(nomination: Input[Dataset], validation: Input[Dataset], release_format: str, min_clips: int,
                     eval_share: float, val_fraction: float, seed: int, audio_mode: str, beam_runner: str,
                     beam_options: list, dataset: Output[Dataset], report: Output[Markdown]):
    """Vocabulary (small classes merged), uploader-disjoint splits, the dataset in `release_format`'s layout."""
    from beam_jobs.creation.assemble import CreationParams, assemble, creation_markdown
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    params = CreationParams(release_format=release_format, min_clips=min_clips, eval_share=eval_share,
                            val_fraction=val_fraction, seed=seed, audio=audio_mode)
    result = assemble(beam.location(nomination), beam.location(validation), beam.location(dataset), params, beam.args)
    with open(report.path, "w") as handle:
        handle.write(creation_markdown(result))
    dataset.metadata.update(release_format=release_format, clips=result["clips_written"], splits=result["splits"],
                            classes=len(result["vocabulary"]))
