"""Every pipeline checks all its parameters before any work: run_local before it submits, and the first task
of the compiled pipeline at run time."""
import pytest
import yaml
from google.protobuf import json_format

import json
import sys

from pipelines import compile as compile_module
from pipelines import defaults, discover, required, run_local
from pipelines.parameters import ParameterError, check_parameters, check_run_parameters, unchecked

PIPELINES = sorted(discover())


@pytest.mark.parametrize("name", PIPELINES)
def test_every_parameter_has_a_rule_and_the_defaults_pass(name):
    pipeline = discover()[name]
    values = defaults(pipeline)
    assert unchecked([*values, *required(pipeline)]) == []
    check_parameters(name, values)
    assert required(pipeline) == (["audio", "model_uri"] if name == "tag_audio" else [])


@pytest.mark.parametrize("name", PIPELINES)
def test_a_bad_parameter_stops_run_local_before_submission(name, tmp_path, capsys):
    pipeline = discover()[name]
    bad = next(value for name, value in (("batch_size", "batch_size=-1"), ("aggregation", "aggregation=median"),
                                         ("min_clips", "min_clips=0")) if name in defaults(pipeline))
    command = [name, "--param", bad, "--param", "beam_options=[\"--runner=FlinkRunner\"]",
               "--pipeline-root", str(tmp_path / "runs")]
    if required(pipeline):
        with pytest.raises(SystemExit, match="required parameters not given: --param audio=..., --param model_uri="):
            run_local.main(command)
        command += ["--param", f"model_uri={tmp_path / 'nowhere'}", "--param", f'audio=["{tmp_path}"]']
    with pytest.raises(SystemExit) as stopped:
        run_local.main(command)
    message = str(stopped.value)
    assert f"pipeline {name}: invalid parameters, nothing was run" in message
    assert f"{bad.split('=')[0]}=" in message and "the runner is beam_runner" in message
    if required(pipeline):
        assert "nowhere" in message
    assert not (tmp_path / "runs").exists()  # no task started


@pytest.mark.parametrize("name", PIPELINES)
def test_the_compiled_pipeline_checks_its_parameters_first(name, tmp_path):
    path = compile_module.compile_pipeline(discover()[name], str(tmp_path / f"{name}.yaml"))
    with open(path) as handle:
        spec = yaml.safe_load_all(handle).__next__()
    check = "check-run-parameters"
    tasks = spec["root"]["dag"]["tasks"]
    check_inputs = spec["components"][f"comp-{check}"]["inputDefinitions"]["parameters"]
    assert set(check_inputs) == set(spec["root"]["inputDefinitions"]["parameters"]) | {"pipeline", "parameter_types"}
    assert check_inputs["pipeline"]["defaultValue"] == name
    for task_name, task in tasks.items():
        if task_name == check:
            continue
        upstream = set(task.get("dependentTasks", []))
        assert upstream, f"{name}: task {task_name} does not wait for anything, not even the parameter check"
    assert any(check in task.get("dependentTasks", []) for task in tasks.values())


def test_the_rules_are_the_tasks_own_checks():
    values = defaults(discover()["noisy_labels"])
    for name, bad, expected in (("epochs", 0, "epochs"), ("stage2_q", 1.5, "0 < q <= 1"),
                                ("prune_percentile", 0, "outside"), ("val_fraction", 1.0, "(0, 1)"),
                                ("loss_variants", [{"train_set": "clean", "flag": "", "loss": "mse"}], "Unknown loss"),
                                ("loss_variants", [{"pooling": "max"}], "train_set, flag, loss")):
        with pytest.raises(ParameterError, match=rf"{name}=.*{expected}" if name != "stage2_q" else "q <= 1"):
            check_parameters("noisy_labels", {**values, name: bad})
    separation = defaults(discover()["separation_ssl"])
    with pytest.raises(ParameterError, match="settings, checkpoint_steps"):
        check_parameters("separation_ssl", {**separation, "settings": [{"name": "x", "proxy_tasks": "sm",
                                                                         "view": "channel", "checkpoints": [7]}]})
    with pytest.raises(ParameterError, match="no rule checks this parameter"):
        check_parameters("x", {"mystery": 1})


def test_feature_params_are_a_preset_or_a_json_object_checked_before_work():
    from beam_jobs.contracts.params import FeatureParams

    assert FeatureParams.resolve("fsdnoisy18k") == FeatureParams.fsdnoisy18k()
    assert FeatureParams.resolve('{"n_mels": 64}').n_mels == 64
    assert defaults(discover()["noisy_labels"])["feature_params"] == "fsdnoisy18k"
    values = defaults(discover()["fsd50k_baseline"])
    with pytest.raises(ParameterError, match=r"feature_params='fsd51k'.*expected a preset"):
        check_parameters("fsd50k_baseline", {**values, "feature_params": "fsd51k"})
    with pytest.raises(ParameterError, match="win_length must be in"):
        check_parameters("fsd50k_baseline", {**values, "feature_params": '{"win_length": 4096}'})


def run_check_task(monkeypatch, pipeline: str, values: dict):
    """The check task's body as its container runs it: the run's parameters in the executor input on the
    command line, numbers as JSON numbers (an integer may arrive as 3.0)."""
    check = discover()[pipeline].pipeline_spec.components["comp-check-run-parameters"]
    parameter_types = json_format.MessageToDict(check.input_definitions.parameters["parameter_types"].default_value)
    executor_input = {"inputs": {"parameterValues": {**values, "pipeline": pipeline,
                                                     "parameter_types": parameter_types}}, "outputs": {}}
    monkeypatch.setattr(sys, "argv", ["executor_main", "--executor_input", json.dumps(executor_input),
                                      "--function_to_execute", "check_run_parameters"])
    check_run_parameters(pipeline, parameter_types)


def test_the_check_task_reads_every_parameter_of_the_run_from_its_executor_input(monkeypatch):
    values = {**defaults(discover()["fsd50k_baseline"]), "epochs": 3.0, "synthetic_clips": 60.0}
    run_check_task(monkeypatch, "fsd50k_baseline", values)
    with pytest.raises(ParameterError, match="batch_size=0"):
        run_check_task(monkeypatch, "fsd50k_baseline", {**values, "batch_size": 0.0})
    with pytest.raises(ParameterError, match="dataset_options"):
        run_check_task(monkeypatch, "fsd50k_baseline", {**values, "dataset_options": {"train_subsets": "both"}})
    with pytest.raises(ParameterError, match=r"epochs=3.5: not an integer"):  # never truncated to 3
        run_check_task(monkeypatch, "fsd50k_baseline", {**values, "epochs": 3.5})


def test_dataset_options_are_the_ones_the_format_takes():
    values = defaults(discover()["missing_labels"])
    assert values["dataset_format"] == "audioset" and values["dataset_options"] == {}
    check_parameters("missing_labels", {**values, "dataset_options": {"train_subsets": "both"}})
    with pytest.raises(ParameterError, match=r"train_subsets='all' \(audioset\): expected one of"):
        check_parameters("missing_labels", {**values, "dataset_options": {"train_subsets": "all"}})
    with pytest.raises(ParameterError, match="'fsd50k' takes no dataset options"):
        check_parameters("missing_labels", {**values, "dataset_format": "fsd50k",
                                            "dataset_options": {"train_subsets": "both"}})


def test_the_compiled_check_task_fails_a_bad_value_where_the_launcher_runs_it(tmp_path):
    """The check task's container command, given an executor input as KFP's launcher writes it (the run's
    values and the compiled defaults), with kfp in its runtime mode (no SDK)."""
    import os
    import subprocess

    compiled = compile_module.compile_pipeline(discover()["fsd50k_baseline"], str(tmp_path / "baseline.yaml"))
    runner = os.path.join(run_local.REPOSITORY_ROOT, "infra", "smoke", "run_compiled_task.py")
    environment = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                   "PYTHONPATH": run_local.REPOSITORY_ROOT}
    for epochs, status in ((3, 0), (0, 1)):
        result = subprocess.run([sys.executable, runner, compiled, "check-run-parameters", "minio://unused",
                                 f"epochs={epochs}"], capture_output=True, text=True, env=environment, timeout=300)
        assert result.returncode == status, result.stderr[-2000:]
    assert "pipeline fsd50k_baseline: invalid parameters, nothing was run" in result.stderr
    assert "epochs=0" in result.stderr


def test_every_parameter_of_every_pipeline_is_described_in_the_compiled_pipeline(tmp_path):
    for name, pipeline in discover().items():
        path = compile_module.compile_pipeline(pipeline, str(tmp_path / f"{name}.yaml"))
        with open(path) as handle:
            spec = next(yaml.safe_load_all(handle))
        parameters = spec["root"]["inputDefinitions"]["parameters"]
        undescribed = [parameter for parameter, definition in parameters.items() if not definition.get("description")]
        assert undescribed == [], f"{name}: {undescribed}"  # what the KFP UI shows beside each field
        assert spec["pipelineInfo"]["description"] == pipeline.description and pipeline.description


def test_a_pipeline_with_an_undescribed_parameter_is_refused_when_defined():
    from pipelines.experiment import experiment

    with pytest.raises(TypeError, match=r"parameters without a description: \['rounds'\]"):
        @experiment(name="undescribed")
        def undescribed(rounds: int = 3, width: float = 1.0):
            """Says nothing of rounds.

            Args:
                width: described.
            """


def test_run_local_help_lists_every_pipeline_and_each_ones_parameters(capsys):
    assert run_local.main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name, pipeline in discover().items():
        assert f"  {name}" in listing and pipeline.description in listing
    assert run_local.main(["noisy_labels", "--help"]) == 0
    parameters = capsys.readouterr().out
    for name, spec in discover()["noisy_labels"].component_spec.inputs.items():
        assert f"  {name} (" in parameters
    assert '  stage2_q (float, default 0.5)\n      Lq\'s q in stage 2 of in-batch discarding.' in parameters
    assert "  loss_variants (JSON list, default [{" in parameters
    assert run_local.main(["tag_audio", "-h"]) == 0
    assert "  model_uri (str, required)" in capsys.readouterr().out


def test_an_architecture_without_a_width_option_refuses_another_width_before_work():
    values = defaults(discover()["missing_labels"])
    check_parameters("missing_labels", values)  # the paper's ResNet-50 teacher at width 1
    with pytest.raises(ParameterError, match="teacher_architecture 'resnet50' has no width option"):
        check_parameters("missing_labels", {**values, "width": 0.5})
    check_parameters("missing_labels", {**values, "width": 0.5, "teacher_architecture": "vgg_like"})
