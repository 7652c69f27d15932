"""Dataset creation as FSD50K and FSDnoisy18k were made: nominate candidate labels from tags, validate them
with rater votes, fix the vocabulary, split by uploader, write both released layouts.

An empty `raw_dir` generates synthetic raw material (clips, Freesound-like metadata, keyword lists, an
ontology, simulated raters) of `synthetic_clips` clips. The `fsd50k` output trains through `fsd50k_baseline`
(`dataset_root` = its folder), the `fsdnoisy18k` output through `noisy_labels`.
"""
from typing import NamedTuple

from kfp.dsl import Dataset, Markdown

from components.creation import assemble_dataset, nominate_candidates, validate_candidates
from pipelines.experiment import experiment


@experiment(name="dataset-creation", description=__doc__.splitlines()[0])
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
    nomination = nominate_candidates(raw_dir=raw_dir, synthetic_clips=synthetic_clips, seed=seed,
                                     nomination_fields=nomination_fields)
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
