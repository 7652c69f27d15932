"""Beam pipeline options from command-line style arguments: the runner is a flag, never hard-coded.

DirectRunner is the default. At scale pass e.g.
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --sdk_container_image=IMAGE
  --runner=FlinkRunner --flink_master=HOST:8081 --environment_type=DOCKER --environment_config=IMAGE
  --runner=SparkRunner --spark_master_url=spark://HOST:7077 --environment_type=DOCKER ...
"""
from __future__ import annotations

import dataclasses

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

KNOWN_RUNNERS = ("DirectRunner", "FnApiRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PrismRunner")
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "PrismRunner")


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if standard.runner not in (None, *KNOWN_RUNNERS):
        raise ValueError(f"Unknown Beam runner {standard.runner!r}; expected one of {KNOWN_RUNNERS}")
    if standard.runner in (None, "DirectRunner"):
        # Beam's DirectRunner first tries the Prism runner, which downloads a binary at run time (no network
        # here); the in-process FnApiRunner is what it falls back to for these batch jobs anyway.
        standard.runner = "FnApiRunner"
    # Workers on remote runners import the project from the container image, not a pickled session.
    options.view_as(SetupOptions).save_main_session = False
    return options


@dataclasses.dataclass(frozen=True)
class BeamSettings:
    """The runner settings of a pipeline's Beam steps: the `beam_runner` and `beam_options` parameters."""

    runner: str = "DirectRunner"
    options: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if self.runner not in KNOWN_RUNNERS:
            raise ValueError(f"Unknown Beam runner {self.runner!r}; expected one of {KNOWN_RUNNERS}")
        bad = [option for option in self.options
               if not isinstance(option, str) or option.split("=", 1)[0] == "--runner"]
        if bad:
            raise ValueError(f"beam_options must be strings, and the runner is beam_runner, not an option: {bad}")

    @property
    def args(self) -> list[str]:
        return [f"--runner={self.runner}", *self.options]

    def location(self, artifact) -> str:
        """Where a Beam job should read or write a KFP artifact.

        The local runners run inside the task's container and use the artifact's local path (KFP copies it
        from and to the pipeline root). Remote runners' workers cannot see that path, so they get the
        artifact's URI (gs://...) and read or write the bucket directly.
        """
        return artifact.path if self.runner in LOCAL_RUNNERS else artifact.uri
