"""`experiment`: dsl.pipeline for the experiments. It says once what every experiment shares:

- the dataset parameters (`dataset_root`, `dataset_format`, `dataset_options`, `feature_params`,
  `synthetic_clips`, `seed`) and the nested pipeline `prepare_dataset` that ingests the dataset, checks that it
  has what the experiment needs and extracts its features; the experiment's body receives its outputs;
- the classifier-training parameters (`Training`: architecture, width, epochs, batch size, learning rate,
  mixed precision), which `train` and `fine_tune` pass to every training task;
- the runner parameters (`beam_runner`, `beam_options`), given to every Beam job's task (components.runner_settings);
- a first task that checks every parameter of the run (pipelines.parameters) before any other task starts.

An experiment's body declares only its own parameters:

    @experiment(name="my-study", dataset=DatasetNeeds("fsd50k", "fsd50k", ("train", "eval")),
                training=Training(epochs=30))
    def my_study(data: PreparedDataset, val_fraction: float = 0.15) -> NamedTuple(...):
        '''What the study shows, in one paragraph (the pipeline's description).

        Args:
            val_fraction: what it means (every parameter of the body has a line here).
        '''
        model = train(data, data.features, loss="lq")
"""

import contextlib
import dataclasses
import functools
import inspect
import re
import types
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, pipeline_context
from kfp.dsl.pipeline_channel import PipelineChannel

from components import LIGHT, component, configure, configuring_tasks, runner_settings, with_runner_settings
from components.data import (extract_features, fingerprint_locations, ingest_dataset, resplit_features,
                             select_train_set)
from components.models import fine_tune_classifier, train_classifier
from pipelines.parameters import check_run_parameters


def _parameter(name: str, annotation, default=inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)


# The meaning of every parameter @experiment declares; an experiment's own parameters are described in its
# docstring's Args section. Both reach `run_local.py PIPELINE --help` and the KFP UI.
SHARED_DESCRIPTIONS = {
    "dataset_root": "The dataset's folder (local, gs://, ...) in `dataset_format`'s layout; empty: generate a "
                    "synthetic dataset of `synthetic_clips` clips in that format.",
    "dataset_format": "fsd50k, fsdnoisy18k, fsdkaggle2019, fsdkaggle2018, audioset or folder (<root>/<class>/<clip>, "
                      "or <root>/<split>/<class>/<clip> with the splits as folders).",
    "dataset_options": 'Options of the dataset\'s format, a JSON object. audioset: {"train_subsets": "balanced"} '
                       '(or "unbalanced", "both"), the subsets that become train. folder: {"group_by": "clip"} (or '
                       '"prefix": the file name up to its first _ - . or space; "subfolder": <class>/<source>/<clip>), '
                       'the clips of one source, which the splits ingest makes keep on one side.',
    "feature_params": "A feature preset (fsd50k, fsdnoisy18k, dcase2018, dcase2019) or a JSON object of FeatureParams "
                      "fields "
                      '(e.g. {"n_mels": 64}).',
    "synthetic_clips": "Clips of the synthetic dataset generated when `dataset_root` is empty (50 to 100,000).",
    "seed": "Seed of the synthetic dataset, the splits and the training runs.",
    "architecture": "Classifier architecture: vgg_like, vgg41, vgg42, resnet18, crnn, densenet121, icassp19_cnn, "
                    "dcase2018_cnn or mobilenet_v1.",
    "width": "Filter-count multiplier of the architecture (1 = its published size; 0.125-0.5 for CPU runs).",
    "epochs": "Training epochs at most (early stopping may end sooner).",
    "batch_size": "Training batch size (patches).",
    "learning_rate": "Adam's initial learning rate.",
    "lr_patience": "Epochs without a gain of the validation metric before the learning rate is halved "
                   "(the authors' ReduceLROnPlateau; 0 = a constant rate).",
    "early_stopping_patience": "Epochs without a gain of 0.001 of the validation metric before training stops "
                               "(the authors' EarlyStopping; 0 = never).",
    "mixed_precision": "Compute in float16 when a GPU is visible.",
    "beam_runner": "Runner of the Beam steps: DirectRunner (in the task's pod), DataflowRunner, FlinkRunner, "
                   "SparkRunner, ... (any case, \"Runner\" optional), or a PipelineRunner's dotted path.",
    "beam_options": 'The runner\'s extra flags, e.g. ["--project=P", "--region=R", "--temp_location=gs://B/tmp"].',
}


def described(summary: str, signature: inspect.Signature, own: dict[str, str]) -> str:
    """A pipeline's docstring: `summary`, then an Args section (what KFP reads its parameter descriptions from)
    with every parameter's meaning; a parameter without one fails here, when the pipeline is defined."""
    meanings = {**SHARED_DESCRIPTIONS, **own}
    missing = [name for name in signature.parameters if not meanings.get(name)]
    if missing:
        raise TypeError(f"parameters without a description: {missing}; describe them in the pipeline's docstring "
                        "(an Args section)")
    return summary.strip() + "\n\nArgs:\n" + "".join(f"    {name}: {meanings[name]}\n" for name in signature.parameters)


ARGUMENT = re.compile(r"^    (\w+): (.*)$")


def own_descriptions(docstring: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) of an experiment body's docstring: the text before its `Args:` line,
    and each `    name: meaning` line of the section, continued on the lines indented deeper."""
    summary, _, section = inspect.cleandoc(docstring or "").partition("\nArgs:\n")
    meanings, name = {}, None
    for line in section.splitlines():
        match = ARGUMENT.match(line)
        if match:
            name, meanings[match[1]] = match[1], match[2].strip()
        elif name and line.startswith("        "):
            meanings[name] += " " + line.strip()
    return summary, meanings


RUNNER_PARAMETERS = (_parameter("beam_runner", str, "DirectRunner"), _parameter("beam_options", list, []))


@dataclasses.dataclass(frozen=True)
class DatasetNeeds:
    """What an experiment needs of its dataset, and the defaults of its dataset parameters."""
    dataset_format: str
    feature_params: str
    splits: tuple[str, ...]
    flags: tuple[str, ...] = ()

    def parameters(self) -> list[inspect.Parameter]:
        return [_parameter("dataset_root", str, ""), _parameter("dataset_format", str, self.dataset_format),
                _parameter("dataset_options", dict, {}), _parameter("feature_params", str, self.feature_params),
                _parameter("synthetic_clips", int, 2000), _parameter("seed", int, 0)]


@dataclasses.dataclass(frozen=True)
class Training:
    """The defaults of the classifier-training parameters an experiment takes; a field set to None is left
    out (the experiment declares its own, e.g. a teacher's and a student's architecture)."""
    architecture: str | None = "vgg_like"
    width: float | None = 1.0
    epochs: int | None = 50
    batch_size: int | None = 64
    learning_rate: float | None = 1e-3
    lr_patience: int | None = 5
    early_stopping_patience: int | None = 15
    mixed_precision: bool | None = False

    def parameters(self) -> list[inspect.Parameter]:
        return [_parameter(field.name, type(getattr(Training, field.name)), getattr(self, field.name))
                for field in dataclasses.fields(self) if getattr(self, field.name) is not None]


class PreparedDataset(NamedTuple):
    """What an experiment's body receives: the manifest and feature set of its dataset, the run's seed and
    feature parameters, and its training parameters ({name: channel}, the seed included)."""
    manifest: PipelineChannel
    features: PipelineChannel
    seed: PipelineChannel
    feature_params: PipelineChannel
    training: dict


def train(data: PreparedDataset, features, **arguments):
    """A train_classifier task on `features` with the run's training parameters (`arguments` override them)."""
    return train_classifier(features=features, **{**data.training, **arguments})


def fine_tune(data: PreparedDataset, initial_model, features, **arguments):
    """A fine_tune_classifier task (warm start from `initial_model`) with the run's training parameters that
    apply to it (not the architecture: it is the initial model's)."""
    inputs = fine_tune_classifier.component_spec.inputs
    run = {name: value for name, value in data.training.items() if name in inputs}
    return fine_tune_classifier(initial_model=initial_model, features=features, **{**run, **arguments})


def check_component(pipeline: str, signature: inspect.Signature):
    """The check task of `pipeline`: check_run_parameters with the pipeline's parameters (names, types and
    defaults) as its interface, so the check always receives them all and cannot drift from the pipeline."""
    checked = types.FunctionType(check_run_parameters.__code__, check_run_parameters.__globals__,
                                 check_run_parameters.__name__)
    checked.__doc__, checked.__module__ = check_run_parameters.__doc__, check_run_parameters.__module__
    constants = [inspect.Parameter("pipeline", inspect.Parameter.KEYWORD_ONLY, annotation=str, default=pipeline),
                 inspect.Parameter("parameter_types", inspect.Parameter.KEYWORD_ONLY, annotation=dict,
                                   default={name: parameter.annotation.__name__
                                            for name, parameter in signature.parameters.items()})]
    checked.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *constants],
                                              return_annotation=inspect.Signature.empty)
    return component(LIGHT, checks_parameters=True)(checked)


class NestedPipeline:
    """A pipeline used as a task of others; its own Beam tasks get its `beam_runner`/`beam_options` parameters,
    which a call inside `runner_settings` need not give. KFP builds a pipeline when it is defined and not inside
    another, so a deployment that configures tasks rebuilds every nested pipeline first (`rebuilt_with`)."""
    defined: list["NestedPipeline"] = []

    def __init__(self, function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def body(*args):
            arguments = signature.bind(*args).arguments
            with runner_settings(arguments["beam_runner"], arguments["beam_options"]):
                return function(*args)

        self.body = body
        self.built = self.build()
        NestedPipeline.defined.append(self)

    def build(self):
        return dsl.pipeline(name=self.body.__name__.replace("_", "-"), description=self.body.__doc__)(self.body)

    def __call__(self, **arguments):
        return configure(self.built(**with_runner_settings(self.built.component_spec.inputs, arguments)))

    @classmethod
    @contextlib.contextmanager
    def rebuilt_with(cls, hook):
        """Every nested pipeline rebuilt with `hook` configuring its tasks, while open (outside a pipeline)."""
        before = [nested.built for nested in cls.defined]
        with configuring_tasks(hook):
            for nested in cls.defined:
                nested.built = nested.build()
            try:
                yield
            finally:
                for nested, built in zip(cls.defined, before):
                    nested.built = built


@NestedPipeline
def prepare_dataset(dataset_root: str, dataset_format: str, dataset_options: dict, feature_params: str,
                    synthetic_clips: int, seed: int, required_splits: list, required_flags: list, beam_runner: str,
                    beam_options: list) -> NamedTuple("Outputs", manifest=Dataset, features=Dataset):
    """Fingerprints the dataset's files (never cached: ingest, which takes the fingerprint, is served from KFP's
    cache only while they are unchanged), ingests the dataset (empty root: generates a synthetic one), checks
    that it has the splits and flags the experiment needs, and extracts its log-mel patches."""
    fingerprint = fingerprint_locations(locations=[dataset_root])
    fingerprint.set_display_name("fingerprint the dataset's files")
    manifest = ingest_dataset(dataset_root=dataset_root, dataset_format=dataset_format,
                              dataset_options=dataset_options, synthetic_clips=synthetic_clips, seed=seed,
                              required_splits=required_splits, required_flags=required_flags,
                              fingerprint=fingerprint.output)
    manifest.set_display_name("ingest")
    features = extract_features(manifest=manifest.outputs["manifest"], feature_params=feature_params)
    features.set_display_name("extract log-mel features")
    outputs = NamedTuple("Outputs", manifest=Dataset, features=Dataset)
    return outputs(manifest=manifest.outputs["manifest"], features=features.outputs["features"])


def train_set_features(data: PreparedDataset, source_splits: list, flag, val_fraction, name: str = ""):
    """The clips of `source_splits` (with dataset `flag`; "" = all) split into train/val by uploader, and their
    features re-split from the extracted set (no clip decoded again): (select task, re-split task)."""
    train_set = select_train_set(manifest=data.manifest, source_splits=source_splits, flag=flag,
                                 val_fraction=val_fraction, seed=data.seed)
    features = resplit_features(source=data.features, split_manifest=train_set.outputs["split_manifest"])
    if name:
        train_set.set_display_name(f"{name} train set")
        features.set_display_name(f"{name} features (re-split)")
    return train_set, features


def experiment(name: str, dataset: DatasetNeeds | None = None, training: Training | None = None):
    """The pipeline of an experiment body (see the module's docstring), described by the first paragraph of the
    body's docstring (the KFP UI's and `run_local.py --help`'s one line); `dataset`: what it needs of its dataset,
    None for a pipeline that reads no dataset (dataset creation, tagging); `training`: the defaults of its
    classifier-training parameters, None where it declares its own."""
    def decorate(body):
        own = list(inspect.signature(body).parameters.values())[1 if dataset else 0:]
        trained = training.parameters() if training else []
        shared = (dataset.parameters() if dataset else []) + trained
        signature = inspect.Signature([*shared, *own, *RUNNER_PARAMETERS],
                                      return_annotation=inspect.signature(body).return_annotation)
        check = check_component(body.__name__, signature)
        summary, own_meanings = own_descriptions(body.__doc__)

        def pipeline(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            check_task = check(**values)
            check_task.set_display_name("check parameters")
            with runner_settings(values["beam_runner"], values["beam_options"]):
                own_values = {parameter.name: values[parameter.name] for parameter in own}
                if dataset:
                    prepared = prepare_dataset(**{parameter.name: values[parameter.name]
                                                  for parameter in dataset.parameters()},
                                               required_splits=list(dataset.splits),
                                               required_flags=list(dataset.flags))
                    prepared.set_display_name("prepare the dataset")
                    data = PreparedDataset(prepared.outputs["manifest"], prepared.outputs["features"], values["seed"],
                                           values["feature_params"],
                                           {"seed": values["seed"], **{p.name: values[p.name] for p in trained}})
                    outputs = body(data, **own_values)
                else:
                    outputs = body(**own_values)
            for task in pipeline_context.Pipeline.get_default_pipeline().tasks.values():
                upstream = {channel.task_name for channel in task.channel_inputs if channel.task_name}
                if task is not check_task and not upstream and not task.dependent_tasks:
                    task.after(check_task)  # every other task waits for one of these
            return outputs

        pipeline.__name__, pipeline.__qualname__ = body.__name__, body.__qualname__
        pipeline.__module__, pipeline.__doc__ = body.__module__, described(summary, signature, own_meanings)
        pipeline.__signature__ = signature
        return dsl.pipeline(name=name, description=" ".join(summary.split("\n\n")[0].split()))(pipeline)

    return decorate
