"""Every pipeline parameter checked before any work: by `run_local.py` before it submits a run, and by the
first task of every compiled pipeline (`check_run_parameters`, added by pipelines.experiment), with the same rules.

A rule exists for every parameter name that a pipeline takes (a test walks all pipelines), and each rule
builds what the tasks will build from the value (TrainParams, LossParams, SeparatorParams, ...) so the check
and the use cannot disagree.
"""
from __future__ import annotations

import os
import re

from apache_beam.io.filesystems import FileSystems

from beam_jobs import splits, synthetic
from beam_jobs.contracts.aggregation import check_aggregation
from beam_jobs.contracts.model_folder import MODEL_FILE
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.creation.assemble import CreationParams
from beam_jobs.creation.nominate import check_fields
from beam_jobs.datasets.formats import dataset_format
from beam_jobs.runner import BeamSettings


class ParameterError(ValueError):
    """A pipeline parameter that would make a task fail (or compute nonsense) later."""


def _train(**values):
    from keras_models.train import TrainParams

    TrainParams(**values)


def _loss(name: str, **values):
    from keras_models.losses import LossParams

    LossParams(name, **values)


def _flag(value):
    """A train-pool flag: "" (every clip), a per-clip flag's name, or "!" and a name (clips without it)."""
    if not isinstance(value, str) or not re.fullmatch(r"(!?[A-Za-z_][A-Za-z0-9_]*)?", value):
        raise ValueError(f"{value!r}: expected \"\", a flag's name or \"!\" and a flag's name")


def _architecture(value):
    from keras_models.architectures import ARCHITECTURES

    if value not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {value!r}; expected one of {sorted(ARCHITECTURES)}")


def _scaled(architecture_parameter: str):
    """The rule that the architecture in `architecture_parameter` takes the run's width."""
    def rule(values):
        from keras_models.architectures import KERAS_APPLICATIONS

        if values[architecture_parameter] in KERAS_APPLICATIONS and values["width"] != 1:
            raise ValueError(f"{architecture_parameter} {values[architecture_parameter]!r} has no width option: "
                             f"width must be 1, got {values['width']}")
    return rule


def _dataset_root(value):
    if value and FileSystems.get_scheme(value) is None and not os.path.isdir(value):
        raise ValueError(f"{value!r} is not a folder (empty = generate a synthetic dataset)")


def _fraction(value, upper_closed=False):
    if not (0 < value <= 1 if upper_closed else 0 < value < 1):
        raise ValueError(f"must be in (0, {'1]' if upper_closed else '1)'}, got {value}")


def _percentiles(values, closed_top):
    for value in values:
        if not (0 < value <= 100 if closed_top else 0 <= value < 100):
            raise ValueError(f"{value} outside {'(0, 100]' if closed_top else '[0, 100)'}")
    if not values:
        raise ValueError("needs at least one value")


def _strategies(values):
    unknown = set(values) - set(splits.STRATEGIES)
    if unknown or not values:
        raise ValueError(f"{sorted(unknown) or 'none'}: expected a non-empty list of {splits.STRATEGIES}")


def _pooling_variants(values):
    if not values or any(set(variant) - {"pooling", "mixup_alpha"} or "pooling" not in variant for variant in values):
        raise ValueError(f"{values}: expected a non-empty list of {{pooling, mixup_alpha (optional)}}")
    for variant in values:
        _train(pooling=variant["pooling"], mixup_alpha=variant.get("mixup_alpha", 0.0))


def _loss_variants(values):
    if not values or any(set(variant) != {"train_set", "flag", "loss"} for variant in values):
        raise ValueError(f"{values}: expected a non-empty list of {{train_set, flag, loss}}")
    for variant in values:
        _loss(variant["loss"])


def _downstream_sets(values):
    if not values or any(set(entry) != {"train_set", "flag"} for entry in values):
        raise ValueError(f"{values}: expected a non-empty list of {{train_set, flag}}")


def _augmentations(values):
    from keras_models.contrastive import ContrastiveParams

    ContrastiveParams(augmentations=tuple(values))


def _separator(values: dict):
    from keras_models.separation import SeparatorParams

    SeparatorParams(channels=values["separator_channels"], steps=values["separator_steps"],
                    checkpoint_steps=tuple(values["checkpoint_steps"]),
                    segment_seconds=values["separator_segment_seconds"], batch_size=values["separator_batch_size"],
                    learning_rate=values["separator_learning_rate"])


def _settings(values: dict):
    from keras_models.separation_ssl import validate_settings

    validate_settings(values["settings"], values["checkpoint_steps"])


def _pretraining(values: dict):
    from keras_models.contrastive import ContrastiveParams

    ContrastiveParams(epochs=values["pretrain_epochs"], batch_size=values["pretrain_batch_size"],
                      learning_rate=values["pretrain_learning_rate"], temperature=values["temperature"])


def _positive(value):
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")


def _non_negative(value):
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")


def _dataset_options(values: dict):
    if not isinstance(values["dataset_options"], dict):
        raise TypeError(f"a JSON object of options, got {values['dataset_options']!r}")
    dataset_format(values["dataset_format"]).check_options(values["dataset_options"])


def _model_uri(value):
    from keras_models.export import EXPORT_FILE

    if not value:
        raise ValueError("a classifier folder or an export folder is required")
    if FileSystems.get_scheme(value) is None and not any(
            os.path.isfile(os.path.join(value, name)) for name in (MODEL_FILE, EXPORT_FILE)):
        raise ValueError(f"{value!r} holds neither {MODEL_FILE} (a classifier folder) nor {EXPORT_FILE} (an export)")


def _audio(values):
    if not values or not all(isinstance(value, str) and value for value in values):
        raise ValueError("a non-empty list of audio files, folders or object-store prefixes is required")
    missing = [value for value in values if FileSystems.get_scheme(value) is None and not os.path.exists(value)]
    if missing:
        raise ValueError(f"not found: {missing}")


# name -> check(value); names ending in one of SUFFIX_RULES' keys use that rule. Rules taking all values
# (cross-parameter checks) are in JOINT_RULES.
RULES = {
    "dataset_root": _dataset_root,
    "dataset_format": dataset_format,
    "model_uri": _model_uri, "audio": _audio, "timestamps": lambda value: None,
    "feature_params": FeatureParams.resolve,
    "synthetic_clips": lambda value: synthetic.SyntheticConfig(clips=value),
    "seed": lambda value: None,
    "architecture": _architecture, "teacher_architecture": _architecture, "student_architecture": _architecture,
    "width": lambda value: _train(width=value),
    "mixed_precision": lambda value: None,
    "val_fraction": _fraction,
    "train_fraction": lambda value: _fraction(value, upper_closed=True),
    "tc_percents": lambda values: _percentiles(values, closed_top=False),
    "prune_percentile": lambda value: _percentiles([value], closed_top=True),
    "discard_percentile": lambda value: _loss("lq", discard_percentile=value),
    "mixup_alpha": lambda value: _train(mixup_alpha=value),
    "pretrain_flag": _flag,
    "fine_tune_lr_decay": lambda value: _train(lr_decay=value),
    "noisy_label_smoothing": lambda value: _loss("bce", bce_smoothing=value),
    "curated_label_smoothing": lambda value: _loss("bce", bce_smoothing=value),
    "mixup_warmup_epochs": lambda value: _train(mixup_warmup_epochs=value),
    "stage2_q": lambda value: _loss("lq", q=value),
    "aggregation": check_aggregation,
    "strategies": _strategies,
    "pooling_variants": _pooling_variants,
    "loss_variants": _loss_variants,
    "downstream_sets": _downstream_sets,
    "augmentations": _augmentations,
    "knn_k": _positive, "shallow_hidden_units": _positive, "evaluation_mixtures": _positive,
    "cp_weight": _non_negative,
    "tps": lambda value: None, "mix_back": lambda value: None, "specaugment": lambda value: None,
    "temperature": _positive,
    "raw_dir": _dataset_root,
    "nomination_fields": check_fields,
    "min_agreement": _positive,
    "min_clips": lambda value: CreationParams(min_clips=value),
    "eval_share": lambda value: CreationParams(eval_share=value),
    "audio_mode": lambda value: CreationParams(audio=value),
}
SUFFIX_RULES = {
    "epochs": lambda value: _train(epochs=value),
    "batch_size": lambda value: _train(batch_size=value),
    "learning_rate": lambda value: _train(learning_rate=value),
    "lr_patience": lambda value: _train(lr_patience=value),
    "early_stopping_patience": lambda value: _train(early_stopping_patience=value),
}
JOINT_RULES = {  # parameters checked together, by the rule that needs them all
    ("beam_runner", "beam_options"): lambda values: BeamSettings(values["beam_runner"], values["beam_options"]),
    ("dataset_format", "dataset_options"): _dataset_options,
    ("separator_channels", "separator_steps", "checkpoint_steps", "separator_segment_seconds",
     "separator_batch_size", "separator_learning_rate"): _separator,
    ("settings", "checkpoint_steps"): _settings,
    ("pretrain_epochs", "pretrain_batch_size", "pretrain_learning_rate", "temperature"): _pretraining,
    **{(name, "width"): _scaled(name) for name in ("architecture", "teacher_architecture", "student_architecture")},
}


def rule_for(name: str):
    if name in RULES:
        return RULES[name]
    return next((rule for suffix, rule in SUFFIX_RULES.items() if name.endswith(suffix)), None)


def unchecked(names) -> list[str]:
    """Parameter names no rule covers (a test requires none)."""
    joint = {name for names_ in JOINT_RULES for name in names_}
    return sorted(name for name in names if rule_for(name) is None and name not in joint)


def check_parameters(pipeline: str, values: dict) -> None:
    """Raises ParameterError listing every invalid parameter of `pipeline`'s run."""
    problems = [f"{name}: no rule checks this parameter" for name in unchecked(values)]
    for name, value in sorted(values.items()):
        rule = rule_for(name)
        if rule is None:
            continue
        try:
            rule(value)
        except (ValueError, TypeError, KeyError) as error:
            problems.append(f"{name}={value!r}: {error}")
    for names, rule in JOINT_RULES.items():
        if set(names) <= set(values):
            try:
                rule({name: values[name] for name in names})
            except (ValueError, TypeError, KeyError) as error:
                problems.append(f"{', '.join(names)}: {error}")
    if problems:
        raise ParameterError(f"pipeline {pipeline}: invalid parameters, nothing was run:\n  " + "\n  ".join(problems))


# How a value of a task's executor input becomes the Python value the rules expect: numbers travel as JSON
# numbers, so an integer may arrive as 3.0.
_CONVERSIONS = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}


def run_parameters(parameter_types: dict, values: dict) -> dict:
    """A run's parameter values from a task's executor input, typed as the pipeline declares them
    ({name: type name})."""
    typed = {}
    for name, type_name in parameter_types.items():
        value = values[name]
        if type_name == "int" and not float(value).is_integer():
            raise ParameterError(f"{name}={value!r}: not an integer")
        typed[name] = _CONVERSIONS[type_name](value)
    return typed


def check_run_parameters(pipeline: str, parameter_types: dict):
    """Fails the run before any work when a parameter of `pipeline` is invalid. Its task is given every
    parameter of the run (its interface is the pipeline's own, see pipelines.experiment.check_component); KFP
    passes them all in the executor input on the container's command line, which is where they are read from.
    (In the container kfp runs without its SDK, so nothing here imports a pipeline or a component.)"""
    import json
    import sys

    from pipelines.parameters import check_parameters, run_parameters

    executor_input = json.loads(sys.argv[sys.argv.index("--executor_input") + 1])
    values = executor_input["inputs"]["parameterValues"]
    check_parameters(pipeline, run_parameters(parameter_types, values))
