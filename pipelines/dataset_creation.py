"""Dataset creation as FSD50K and FSDnoisy18k were made: nominate candidate labels from tags, validate them
with rater votes, fix the vocabulary, split by uploader, write both released layouts.

An empty `raw_dir` generates synthetic raw material (clips, Freesound-like metadata, keyword lists, an
ontology, simulated raters) of `synthetic_clips` clips. The `fsd50k` output trains through `fsd50k_baseline`
(`dataset_root` = its folder), the `fsdnoisy18k` output through `noisy_labels`.
"""
from typing import NamedTuple

from kfp.dsl import Dataset, Markdown

from components.creation import assemble_dataset, nominate_candidates, validate_candidates
from components.data import fingerprint_locations
from pipelines.experiment import experiment


@experiment(name="dataset-creation")
def dataset_creation(
    raw_dir: str = "",
    synthetic_clips: int = 800,
    seed: int = 0,
    nomination_fields: list = ["tags", "title"],
    min_agreement: int = 2,
    min_clips: int = 20,
    eval_share: float = 0.2,
    val_fraction: float = 0.15,
    audio_mode: str = "copy",
) -> NamedTuple("Outputs", fsd50k=Dataset, fsdnoisy18k=Dataset, report=Markdown, validation_report=Markdown):
    """Dataset creation as FSD50K and FSDnoisy18k were made: nominate candidate labels from tags, validate them
    with rater votes, fix the vocabulary, split by uploader, write both released layouts.

    Args:
        raw_dir: The raw material (clips, Freesound-like metadata, keyword lists, ontology, rater votes);
            empty: generate synthetic raw material of `synthetic_clips` clips.
        synthetic_clips: Clips of the synthetic raw material generated when `raw_dir` is empty.
        seed: Seed of the synthetic raw material and of the splits.
        nomination_fields: The clip fields whose text nominates labels: any of tags, title, description.
        min_agreement: Votes needed to accept (present) or reject (not present) a candidate label.
        min_clips: Clips a class needs to stay in the vocabulary (otherwise it merges into its nearest kept
            ancestor).
        eval_share: Share of each class's clips the evaluation split aims at (uploaders stay on one side).
        val_fraction: Share of the development clips in FSD50K's validation split.
        audio_mode: copy the clips into the dataset, or link them (a local disk only).
    """
    raw_files = fingerprint_locations(locations=[raw_dir])
    raw_files.set_display_name("fingerprint the raw material's files")
    nomination = nominate_candidates(raw_dir=raw_dir, synthetic_clips=synthetic_clips, seed=seed,
                                     nomination_fields=nomination_fields, fingerprint=raw_files.output)
    nomination.set_display_name("nominate candidate labels")
    validation = validate_candidates(nomination=nomination.outputs["nomination"], min_agreement=min_agreement)
    validation.set_display_name("validate with rater votes")
    datasets = {}
    for release_format in ("fsd50k", "fsdnoisy18k"):
        assembled = assemble_dataset(nomination=nomination.outputs["nomination"],
                                     validation=validation.outputs["validation"], release_format=release_format,
                                     min_clips=min_clips, eval_share=eval_share, val_fraction=val_fraction, seed=seed,
                                     audio_mode=audio_mode)
        assembled.set_display_name(f"assemble ({release_format} layout)")
        datasets[release_format] = assembled
    outputs = NamedTuple("Outputs", fsd50k=Dataset, fsdnoisy18k=Dataset, report=Markdown, validation_report=Markdown)
    return outputs(fsd50k=datasets["fsd50k"].outputs["dataset"], fsdnoisy18k=datasets["fsdnoisy18k"].outputs["dataset"],
                   report=datasets["fsd50k"].outputs["report"], validation_report=validation.outputs["report"])
