"""Runs a pipeline on this machine through kfp.local (SubprocessRunner) and prints its final metrics.

    python pipelines/run_local.py PIPELINE [--param NAME=VALUE ...] [--pipeline-root DIR]
    python pipelines/run_local.py --help             the pipelines, one line each
    python pipelines/run_local.py PIPELINE --help    the pipeline's parameters: type, default, meaning

Each task's start, end and duration are printed as it finishes; the exit status is non-zero on failure.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap
import time

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMETER_PARSERS = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": lambda text: {"true": True, "false": False}[text.lower()],
    "LIST": json.loads,
    "STRUCT": json.loads,
}
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TASK_STARTED = re.compile(r"Executing task '(?P<task>[^']+)'")
TASK_FINISHED = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>\w+)")


class TaskTimer(logging.Filter):
    """Watches kfp.local's log records and prints each task's start, end and duration.

    Loop iterations run concurrently under the same task name, each in its own thread, so a task is
    identified by its name and the thread that logs it.
    """

    def __init__(self):
        super().__init__()
        self.started: dict[tuple[str, int], float] = {}
        self.finished: list[tuple[str, str, float]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = ANSI_ESCAPE.sub("", record.getMessage())
        if match := TASK_STARTED.search(message):
            self.started[match["task"], record.thread] = record.created
        elif (match := TASK_FINISHED.search(message)) and (match["task"], record.thread) in self.started:
            start = self.started.pop((match["task"], record.thread))
            duration = record.created - start
            self.finished.append((match["task"], match["status"], duration))
            print(f"[run_local] task {match['task']}: {match['status']}, started {time.strftime('%H:%M:%S', time.localtime(start))}, "
                  f"ended {time.strftime('%H:%M:%S', time.localtime(record.created))}, took {duration:.1f} s",
                  flush=True)
        return True


def parse_params(pipeline, assignments: list[str]) -> dict:
    """NAME=VALUE strings -> typed arguments, checked against the pipeline's declared parameters."""
    declared = pipeline.pipeline_spec.root.input_definitions.parameters
    from kfp.pipeline_spec import pipeline_spec_pb2

    type_names = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    arguments = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator:
            raise SystemExit(f"--param {assignment!r}: expected NAME=VALUE")
        if name not in declared:
            raise SystemExit(f"--param {name}: unknown parameter; {pipeline.name} takes {sorted(declared)}")
        type_name = type_names.Name(declared[name].parameter_type)
        try:
            arguments[name] = PARAMETER_PARSERS[type_name](value)
        except (ValueError, KeyError) as error:
            raise SystemExit(f"--param {name}={value!r}: not a valid {type_name.lower()} ({error})")
    return arguments


def print_outputs(outputs) -> None:
    for name, artifact in (outputs or {}).items():
        metadata = {key: value for key, value in artifact.metadata.items() if key != "display_name"}
        if metadata:
            print(f"\n== {name} ({artifact.uri})")
            width = max(len(key) for key in metadata)
            for key, value in metadata.items():
                print(f"  {key:<{width}}  {value:.4f}" if isinstance(value, float) else f"  {key:<{width}}  {value}")
        elif artifact.schema_title == "system.HTML":  # a page for the UI's visualisation, not for a terminal
            print(f"\n== {name}: open {artifact.path} in a browser")
        elif artifact.uri and os.path.isfile(artifact.path):
            print(f"\n== {name} ({artifact.path})\n")
            with open(artifact.path) as handle:
                print(handle.read())


TYPE_NAMES = {"String": "str", "Integer": "int", "Float": "float", "Boolean": "bool", "List": "JSON list",
              "Dict": "JSON object"}


def pipelines_help(pipelines: dict) -> str:
    width = max(map(len, pipelines))
    return "pipelines:\n" + "".join(f"  {name:<{width}}  {pipeline.description}\n" for name, pipeline in sorted(
        pipelines.items())) + "\nrun_local.py PIPELINE --help lists a pipeline's parameters.\n"


def parameters_help(name: str, pipeline) -> str:
    """Every parameter of `pipeline`: its type, default (or `required`) and meaning, as the KFP UI shows them."""
    lines = [f"{name}: {pipeline.description}", "", "parameters (--param NAME=VALUE):"]
    for parameter, spec in pipeline.component_spec.inputs.items():
        default = "required" if spec.default is None and not spec.optional else f"default {json.dumps(spec.default)}"
        lines.append(f"  {parameter} ({TYPE_NAMES[spec.type]}, {default})")
        lines += [f"      {line}" for line in textwrap.wrap(spec.description, 100)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("pipeline", nargs="?")
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--pipeline-root", default=os.path.join(REPOSITORY_ROOT, "runs"))
    args = parser.parse_args(argv)

    # Task subprocesses import the repository and should not drown the log in TensorFlow's start-up noise.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPOSITORY_ROOT, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPOSITORY_ROOT)
    from kfp import local

    from pipelines.parameters import ParameterError, check_parameters
    from pipelines import defaults, discover, required

    pipelines = discover()
    if args.help or not args.pipeline:
        if args.pipeline in pipelines:
            print(parameters_help(args.pipeline, pipelines[args.pipeline]), end="")
        else:
            print(parser.format_help() + "\n" + pipelines_help(pipelines), end="")
        return 0 if args.help else 2
    if args.pipeline not in pipelines:
        parser.error(f"unknown pipeline {args.pipeline!r}; available: {sorted(pipelines)}")
    pipeline = pipelines[args.pipeline]
    arguments = parse_params(pipeline, args.param)
    missing = [name for name in required(pipeline) if name not in arguments]
    if missing:
        raise SystemExit(f"pipeline {args.pipeline}: required parameters not given: "
                         + ", ".join(f"--param {name}=..." for name in missing))
    try:
        check_parameters(args.pipeline, defaults(pipeline) | arguments)
    except ParameterError as error:
        raise SystemExit(str(error))

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=os.path.abspath(args.pipeline_root),
               raise_on_error=True)
    timer = TaskTimer()
    logging.getLogger().addFilter(timer)
    started = time.time()
    try:
        task = pipeline(**arguments)
    except Exception as error:  # kfp.local raises RuntimeError naming the failed task
        print(f"[run_local] {args.pipeline} FAILED after {time.time() - started:.1f} s: {error}", file=sys.stderr)
        return 1
    print(f"\n[run_local] {args.pipeline} finished in {time.time() - started:.1f} s")
    for name, status, duration in timer.finished:
        print(f"  {name:<40} {status:<8} {duration:8.1f} s")
    print_outputs(task.outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
