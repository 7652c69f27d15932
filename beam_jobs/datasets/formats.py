"""The dataset formats: one record per format, the one place that lists them. A record names the format's
reader and the options only it takes (a pipeline's `dataset_options`), and how the synthetic generator
(beam_jobs.synthetic) writes a dataset in its layout; the layout constants, reader and synthetic writer live
in the format's module, datasets/<format>.py.

Adding a format: write datasets/<format>.py (`read_<format>(root, **options)` -> Manifest, and
`synthetic_split`, `synthetic_audio_path`, `write_synthetic`, as the others do), then add its record here.
"""
from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Callable

from beam_jobs.contracts.manifest import DatasetError, Manifest
from beam_jobs.datasets import audioset, folder, fsd50k, fsdkaggle2018, fsdkaggle2019, fsdnoisy18k


@dataclasses.dataclass(frozen=True)
class SyntheticLayout:
    """How a synthetic dataset imitates the format's release."""
    classes: str  # the synthetic classes it labels: "ontology" (parents too), "leaves", or "closed_set" (leaves
    #               but one family, whose sounds become out-of-vocabulary label noise)
    single_label: bool
    held_out: str  # the split of the last clips, from uploaders not seen elsewhere
    held_out_fraction: float
    explicit_negatives: bool = False  # AudioSet: missing positives and verified absent classes


@dataclasses.dataclass(frozen=True)
class DatasetFormat:
    name: str
    module: ModuleType  # datasets/<format>.py: layout constants, reader, synthetic writer
    reader: Callable[..., Manifest]  # reader(root, **options)
    synthetic: SyntheticLayout
    options: dict = dataclasses.field(default_factory=dict)  # option -> its allowed values, the default first

    def check_options(self, options: dict) -> dict:
        """`options` with the defaults of those not given; raises on an option this format does not take or a
        value it does not allow."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = f"takes {sorted(self.options)}" if self.options else "takes no dataset options"
            raise DatasetError(f"dataset format {self.name!r} {takes}; got {unknown}")
        for name, value in options.items():
            if value not in self.options[name]:
                raise DatasetError(f"dataset option {name}={value!r} ({self.name}): expected one of "
                                   f"{list(self.options[name])}")
        return {name: options.get(name, allowed[0]) for name, allowed in self.options.items()}

    def synthetic_split(self, position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
        """A synthetic dev clip's (split, flags, whether its labels are noisy) by its position in the dev clips."""
        return self.module.synthetic_split(position, in_val_uploaders)

    def synthetic_audio_path(self, root: str, plan) -> str:
        return self.module.synthetic_audio_path(root, plan)

    def write_synthetic(self, plans, root: str, vocabulary, mid) -> None:
        self.module.write_synthetic(plans, root, vocabulary, mid)


FORMATS = {format_.name: format_ for format_ in (
    DatasetFormat("fsd50k", fsd50k, fsd50k.read_fsd50k, SyntheticLayout("ontology", False, "eval", 0.2)),
    DatasetFormat("fsdnoisy18k", fsdnoisy18k, fsdnoisy18k.read_fsdnoisy18k,
                  SyntheticLayout("closed_set", True, "test", 0.1)),
    DatasetFormat("fsdkaggle2019", fsdkaggle2019, fsdkaggle2019.read_fsdkaggle2019,
                  SyntheticLayout("closed_set", False, "test", 0.1)),
    DatasetFormat("fsdkaggle2018", fsdkaggle2018, fsdkaggle2018.read_fsdkaggle2018,
                  SyntheticLayout("closed_set", True, "test", 0.15)),
    # which of AudioSet's released train subsets form the train split
    DatasetFormat("audioset", audioset, audioset.read_audioset,
                  SyntheticLayout("ontology", False, "eval", 0.2, explicit_negatives=True),
                  {"train_subsets": tuple(audioset.TRAIN_SUBSETS)}),
    # which clips come from one source, kept on one side of the splits ingest makes
    DatasetFormat("folder", folder, folder.read_folder, SyntheticLayout("leaves", True, "eval", 0.2),
                  {"group_by": folder.GROUPINGS}),
)}


def dataset_format(name: str) -> DatasetFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[name]
