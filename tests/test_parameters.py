"""Every pipeline checks all its parameters before any work: run_local before it submits, and the first task
of the compiled pipeline at run time."""
import pytest
import yaml

from beam_jobs.pipeline_parameters import ParameterError, check_parameters, unchecked
from pipelines import compile as compile_module
from pipelines import defaults, discover, required, run_local

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
    check = f"check-{name.replace('_', '-')}-parameters"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(spec["components"][f"comp-{check}"]["inputDefinitions"]["parameters"]) == set(
        spec["root"]["inputDefinitions"]["parameters"])
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
                                ("variants", [{"train_set": "clean", "flag": "", "loss": "mse"}], "Unknown loss")):
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
