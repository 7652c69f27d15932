"""Beam pipeline options from command-line style arguments: the runner is a flag, never hard-coded.

DirectRunner is the default. At scale pass e.g.
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --sdk_container_image=IMAGE
  --runner=FlinkRunner --flink_master=HOST:8081 --environment_type=DOCKER --environment_config=IMAGE
  --runner=SparkRunner --spark_master_url=spark://HOST:7077 --environment_type=DOCKER ...
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib
import os

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, SetupOptions, StandardOptions

KNOWN_RUNNERS = ("DirectRunner", "FnApiRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PrismRunner")
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "PrismRunner")
# Compiled pipelines set this to the task's CPU request (pipelines/deployment.py): a pod sees all of its node's
# cores, not the share it was given.
TASK_CPUS_ENV = "TASK_CPUS"
# A local worker process costs ~1.2 CPU s to start (importing Beam and the job's modules) and its elements cross a
# data channel: on 2 cores, 2 workers were 1.10-1.14x faster than 1 at 2,000 clips, 1.38-1.39x at 4,000,
# 1.47-1.61x at 8,000 and 1.70x at 50,000 (wall; benchmarks/feature_extraction.py and scale.py).
ITEMS_PER_LOCAL_WORKER = 2000


# glibc hands every freed block over 128 KiB back to the system and raises that threshold only as it sees such
# blocks freed, so a clip's few-MB arrays could be mapped afresh each time: 0.66M page faults, 1.5 of 5.5 CPU s
# for 2,000 clips in one run, a tenth of that in the next. Blocks up to these sizes now stay in the heap.
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD_BYTES = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """Lets this process's allocator reuse freed large arrays instead of mapping new pages (glibc; elsewhere
    nothing to do). Called where a worker sets up the feature functions, and by their benchmark."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


# Set in every Beam SDK harness process: by the local runner for its worker subprocesses and by the remote
# runners' container boot; never in the process that launches a job.
HARNESS_ENV = "CONTROL_API_SERVICE_DESCRIPTOR"


def settle_worker_process() -> None:
    """Called where a worker sets up the feature functions. Allocator: keep_freed_memory. In a harness
    process, also moves the objects of its imports out of the cyclic collector's sight (gc.freeze): at exit
    the interpreter otherwise walks them all, 0.3 s per local worker, and the runner stops its workers one
    after another. The launching process (a test session, a notebook) keeps its collector as it was."""
    keep_freed_memory()
    if os.environ.get(HARNESS_ENV):
        gc.freeze()


def available_cpus() -> int:
    """The task's CPU request where the compiled pipeline gave it, else the cores this process may run on."""
    given = os.environ.get(TASK_CPUS_ENV, "")
    if given:
        try:
            return max(1, int(float(given)))
        except ValueError:
            raise ValueError(f"{TASK_CPUS_ENV}={given!r} is not a number of CPUs") from None
    return len(os.sched_getaffinity(0))


def local_workers(items: int) -> int:
    """DirectRunner workers for a job over `items` clips: one per ITEMS_PER_LOCAL_WORKER, up to the CPUs."""
    return max(1, min(available_cpus(), items // ITEMS_PER_LOCAL_WORKER))


def canonical_runner(name: str) -> str:
    """The runner a name means, accepted as Beam accepts it: a known runner in any case, with or without
    "Runner" ("dataflow" -> "DataflowRunner"), or the dotted path of a PipelineRunner subclass (imported
    here, so a runner whose package is missing is refused now, not when the job starts)."""
    known = {runner.lower().removesuffix("runner"): runner for runner in KNOWN_RUNNERS}
    if name.lower().removesuffix("runner") in known:
        return known[name.lower().removesuffix("runner")]
    expected = (f"expected one of {KNOWN_RUNNERS} (any case, \"Runner\" optional) or the dotted path of a "
                "PipelineRunner subclass")
    if "." in name:
        from apache_beam.runners.runner import PipelineRunner

        module, _, attribute = name.rpartition(".")
        try:
            runner = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"Beam runner {name!r} cannot be imported ({error}); {expected}") from None
        if not (isinstance(runner, type) and issubclass(runner, PipelineRunner)):
            raise ValueError(f"Beam runner {name!r} is not a PipelineRunner subclass; {expected}")
        return name
    raise ValueError(f"Unknown Beam runner {name!r}; {expected}")


def pipeline_options(beam_args: list[str], items: int = 0) -> PipelineOptions:
    """Options from Beam's command-line flags. On the local runner a job over `items` clips (0: a job that
    does not scale with clips) gets local_workers(items) worker processes unless --direct_num_workers says."""
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if standard.runner is not None:
        standard.runner = canonical_runner(standard.runner)
    if standard.runner in (None, "DirectRunner"):
        # Beam's DirectRunner first tries the Prism runner, which downloads a binary at run time (no network
        # here); the in-process FnApiRunner is what it falls back to for these batch jobs anyway.
        standard.runner = "FnApiRunner"
    direct = options.view_as(DirectOptions)
    if standard.runner == "FnApiRunner" and not any(arg.startswith("--direct_num_workers") for arg in beam_args):
        direct.direct_num_workers = local_workers(items)
        if direct.direct_num_workers > 1:
            direct.direct_running_mode = "multi_processing"  # threads would share one GIL
    # Workers on remote runners import the project from the container image, not a pickled session.
    options.view_as(SetupOptions).save_main_session = False
    return options


def runs_in_parallel(options: PipelineOptions) -> bool:
    """Whether the job's elements go to several workers: a remote runner, or more than one local worker.
    Such a job must break fusion after reading a small input (a manifest) or one worker does all the work."""
    runner = options.view_as(StandardOptions).runner
    return runner not in LOCAL_RUNNERS or options.view_as(DirectOptions).direct_num_workers > 1


@dataclasses.dataclass(frozen=True)
class BeamSettings:
    """The runner settings of a pipeline's Beam steps: the `beam_runner` and `beam_options` parameters."""

    runner: str = "DirectRunner"
    options: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "runner", canonical_runner(self.runner))
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
