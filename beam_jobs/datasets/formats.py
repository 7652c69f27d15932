"""The dataset formats ingest reads: each one's reader and the options only it takes (a pipeline's
`dataset_options`), in one record per format."""
from __future__ import annotations

import dataclasses
from typing import Callable

from beam_jobs.contracts.manifest import DatasetError, Manifest
from beam_jobs.datasets.audioset import TRAIN_SUBSETS, read_audioset
from beam_jobs.datasets.folder import read_folder
from beam_jobs.datasets.fsd50k import read_fsd50k
from beam_jobs.datasets.fsdkaggle2018 import read_fsdkaggle2018
from beam_jobs.datasets.fsdkaggle2019 import read_fsdkaggle2019
from beam_jobs.datasets.fsdnoisy18k import read_fsdnoisy18k


@dataclasses.dataclass(frozen=True)
class DatasetFormat:
    name: str
    reader: Callable[..., Manifest]  # reader(root, **options)
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

    def read(self, root: str, options: dict | None = None) -> Manifest:
        return self.reader(root, **self.check_options(options or {}))


FORMATS = {format_.name: format_ for format_ in (
    DatasetFormat("fsd50k", read_fsd50k),
    DatasetFormat("fsdnoisy18k", read_fsdnoisy18k),
    DatasetFormat("fsdkaggle2019", read_fsdkaggle2019),
    DatasetFormat("fsdkaggle2018", read_fsdkaggle2018),
    # which of AudioSet's released train subsets form the train split
    DatasetFormat("audioset", read_audioset, {"train_subsets": tuple(TRAIN_SUBSETS)}),
    DatasetFormat("folder", read_folder),
)}


def dataset_format(name: str) -> DatasetFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[name]
