"""The synthetic dataset job (Beam): every clip rendered and written, then the metadata files of the dataset's
format (its record in beam_jobs.datasets.formats), the ontology and the truth file."""
from __future__ import annotations

import argparse
import io
import json

import apache_beam as beam
import soundfile
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.storage import join, write_text
from beam_jobs.datasets.formats import FORMATS
from beam_jobs.runner import pipeline_options
from beam_jobs.synthetic.clips import MAX_CLIPS, MIN_CLIPS, ClipPlan, SyntheticConfig, plan_clip, render_clip
from beam_jobs.synthetic.sounds import mid, ontology_json

def audio_path(output_dir: str, plan: ClipPlan, config: SyntheticConfig) -> str:
    return config.layout.synthetic_audio_path(output_dir, plan)


def write_clip(index: int, config: SyntheticConfig, output_dir: str, path_of=audio_path) -> ClipPlan:
    """Renders clip `index` and writes it as 16-bit WAV at `path_of(output_dir, plan, config)`."""
    plan = plan_clip(index, config)
    buffer = io.BytesIO()
    soundfile.write(buffer, render_clip(plan, config), plan.sample_rate, subtype="PCM_16", format="WAV")
    with FileSystems.create(path_of(output_dir, plan, config)) as handle:
        handle.write(buffer.getvalue())
    return plan


TRUTH_FILE = "synthetic_truth.jsonl"


def write_metadata(plans: list[ClipPlan], output_dir: str, config: SyntheticConfig) -> None:
    """The format's metadata files, the ontology, and `synthetic_truth.jsonl`: what each clip really
    contains next to what its metadata says (only synthetic data can tell label noise apart)."""
    plans = sorted(plans, key=lambda plan: plan.index)
    config.layout.write_synthetic(plans, output_dir, config.spec.vocabulary, mid)
    write_text(join(output_dir, "ontology.json"), ontology_json())
    write_text(join(output_dir, TRUTH_FILE), "".join(json.dumps(
        {"fname": plan.fname, "split": plan.split, "uploader": plan.uploader, "true_labels": list(plan.true_labels),
         "labels": list(plan.labels), "noise": plan.noise}) + "\n" for plan in plans))


class WriteDataset(beam.PTransform):
    """Clip indices -> each clip rendered and written, then the metadata files of the whole dataset."""

    def __init__(self, config: SyntheticConfig, output_dir: str):
        super().__init__()
        self.config, self.output_dir = config, output_dir

    def expand(self, indices):
        return (indices
                | "Distribute" >> beam.Reshuffle()
                | "RenderAndWrite" >> beam.Map(write_clip, config=self.config, output_dir=self.output_dir)
                | "CollectPlans" >> beam.combiners.ToList()
                | "WriteMetadata" >> beam.Map(write_metadata, output_dir=self.output_dir, config=self.config))


def generate(output_dir: str, clips: int, seed: int, beam_args: list[str] | None = None,
             dataset_format: str = "fsd50k", **options) -> str:
    """Writes the dataset under `output_dir` and returns it; `options` are SyntheticConfig fields."""
    config = SyntheticConfig(format=dataset_format, clips=clips, seed=seed, **options)
    with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
        _ = p | "ClipIndices" >> beam.Create(range(clips)) | "WriteDataset" >> WriteDataset(config, output_dir)
    return output_dir


def run(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--format", default="fsd50k", choices=sorted(FORMATS))
    parser.add_argument("--clips", type=int, default=500, help=f"{MIN_CLIPS} to {MAX_CLIPS}")
    parser.add_argument("--seed", type=int, default=0)
    defaults = SyntheticConfig()
    for name in ("label_noise", "out_of_vocabulary", "missing_positives", "explicit_negatives", "specialty"):
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    args, beam_args = parser.parse_known_args(argv)
    options = {name: getattr(args, name) for name in
               ("label_noise", "out_of_vocabulary", "missing_positives", "explicit_negatives", "specialty")}
    return generate(args.output_dir, args.clips, args.seed, beam_args, args.format, **options)
