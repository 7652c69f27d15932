"""The compiled pipelines keep the interface they had before the pipeline layer said each experiment once
(tests/data/compiled_interfaces_before.json, compiled at 55aca39), except for the changes named here."""
import json
import pathlib

import pytest

from compiled_interface import interfaces
from pipelines import compile as compile_module

BEFORE = pathlib.Path(__file__).parent / "data" / "compiled_interfaces_before.json"
EXTRACT = "task:extract_features/extract log-mel features.features"
# Every dataset-reading pipeline: `audioset_train` became `dataset_options` (the options only the formats that
# use them read); the check task is one function for every pipeline; extraction shows one name.
EVERY_PIPELINE = [
    ('"audioset_train": "param:audioset_train", ', ""),
    ('"dataset_format": "param:dataset_format", ',
     '"dataset_format": "param:dataset_format", "dataset_options": "param:dataset_options", '),
]
CHANGES = {  # pipeline -> (old text, new text) in its interface's JSON, after EVERY_PIPELINE
    # `variants` had two schemas; each is a parameter of its own name now
    "shift_invariance": [("variants", "pooling_variants")],
    "noisy_labels": [("variants", "loss_variants"),
                     ('"name": "extract-features"', '"name": "extract log-mel features"'),
                     ("task:extract_features/extract-features.features", EXTRACT),
                     # the pool's view is named like dcase2018's views (pipelines.experiment.train_set_features)
                     ('"split_manifest": "task:select_train_set/noisy + clean train set.split_manifest"}, '
                      '"name": "view-features"',
                      '"split_manifest": "task:select_train_set/noisy + clean train set.split_manifest"}, '
                      '"name": "noisy + clean features (a view)"')],
    "split_study": [('"name": "extract-features"', '"name": "extract log-mel features"'),
                    ("task:extract_features/extract-features.features", EXTRACT)],
    "separation_ssl": [("extract labelled patches", "extract log-mel features")],
    # the train/val split is a view of the whole extracted set (prepare_dataset extracts every experiment's set)
    "missing_labels": [('"manifest": "task:split_dev_set/train/val split.split_manifest"}, '
                        '"name": "extract log-mel features"',
                        '"manifest": "task:ingest_dataset/ingest.manifest"}, "name": "extract log-mel features"'),
                       (f'"features": "{EXTRACT}"', '"features": "task:view_features/train/val features (a view)'
                                                    '.features"')],
    # the downstream sets are views of the extracted set, not extracted again
    "contrastive_ssl": [('"feature_params": "param:feature_params", "manifest": '
                         '"task:select_train_set/select-train-set.split_manifest"}, "name": "extract-features"',
                         '"feature_params": "param:feature_params", "manifest": "task:ingest_dataset/ingest.manifest"}'
                         ', "name": "extract log-mel features"'),
                        ('"features": "task:extract_features/extract-features.features"',
                         '"features": "task:view_features/view-features.features"')],
}
# noisy_labels: the tasks outside the loop over variants read the pool's view, which is named now
LOOP_TASKS = {"train-classifier", "evaluate-single-label", "select-train-set", "view-features"}
POOL_VIEW = ("task:view_features/view-features.features", "task:view_features/noisy + clean features (a view).features")
ADDED_TASKS = {
    "missing_labels": {"function": "view_features", "name": "train/val features (a view)", "inputs": {
        "beam_options": "param:beam_options", "beam_runner": "param:beam_runner", "source": EXTRACT,
        "split_manifest": "task:split_dev_set/train/val split.split_manifest"}},
    "contrastive_ssl": {"function": "view_features", "name": "view-features", "inputs": {
        "beam_options": "param:beam_options", "beam_runner": "param:beam_runner", "source": EXTRACT,
        "split_manifest": "task:select_train_set/select-train-set.split_manifest"}},
}


# Names that meant two things: "view" is an SSL view only; the re-split feature set and the separated channels
# are named so. Applied last, to every pipeline.
RENAMES = [('"function": "view_features"', '"function": "resplit_features"'),
           ("task:view_features/", "task:resplit_features/"), ("view-features", "resplit-features"),
           ("(a view)", "(re-split)"),
           ('"function": "separate_views"', '"function": "separate_channels"'),
           ('"views": "task:separate_views/separated views.views"',
            '"separated": "task:separate_channels/separated channels.separated"'),
           ('"name": "separated views"', '"name": "separated channels"')]


# The published schedule and stopping rule (issue 30): two training parameters where the classifier-training
# parameters are, passed to every training task that takes the run's training parameters.
RECIPE_PARAMETERS = {"lr_patience": {"type": "NUMBER_INTEGER", "default": 5.0},
                     "early_stopping_patience": {"type": "NUMBER_INTEGER", "default": 15.0}}
TRAINING_FUNCTIONS = {"train_classifier", "fine_tune_classifier"}
# The released configs' values (docs/recipes.md), applied after RENAMES: noisy_labels' instance selection runs
# on the noisy set, with its percentile, epochs and clip aggregation.
RECIPE_CHANGES = {"noisy_labels": [
    ('"flag": "const:\\"\\"", "manifest": "task:ingest_dataset/ingest.manifest"',
     '"flag": "const:\\"!manually_verified\\"", "manifest": "task:ingest_dataset/ingest.manifest"'),
    ("noisy + clean", "noisy"), ('\\"train_set\\": \\"noisy_and_clean\\"}"', '\\"train_set\\": \\"noisy\\"}"')],
    # contrastive pretraining on the noisy set, with the released config's three augmentations
    "contrastive_ssl": [
        ('"compander", "noise", "specaugment", "shift"]', '"compander", "noise"]'),
        ('"flag": "const:\\"\\"", "manifest": "task:ingest_dataset/ingest.manifest"',
         '"flag": "const:\\"!manually_verified\\"", "manifest": "task:ingest_dataset/ingest.manifest"'),
        ("unlabelled train set", "unlabelled train set (noisy)")]}
RECIPE_DEFAULTS = {  # pipeline -> {parameter: its published default}, docs/recipes.md
    "missing_labels": {"teacher_architecture": "resnet50",
                       "tc_percents": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0,
                                       15.0, 20.0]},
    "contrastive_ssl": {"pretrain_epochs": 500.0, "downstream_epochs": 200.0, "batch_size": 128.0},
    "separation_ssl": {"separator_channels": 8.0},
    "noisy_labels": {"aggregation": "geometric_mean", "discard_percentile": 93.0, "stage2_epochs": 85.0,
                     "architecture": "icassp19_cnn", "epochs": 160.0},
    "dcase2018_task2": {"architecture": "dcase2018_cnn", "feature_params": "dcase2018", "epochs": 5.0,
                        "learning_rate": 0.0001, "lr_patience": 0.0, "early_stopping_patience": 0.0},
    "dcase2019_task2": {"architecture": "mobilenet_v1", "feature_params": "dcase2019", "noisy_epochs": 10.0,
                        "curated_epochs": 100.0, "learning_rate": 0.0001, "fine_tune_learning_rate": 0.003,
                        "lr_patience": 0.0, "early_stopping_patience": 0.0},
}


def expected(name: str, before: dict) -> dict:
    text = json.dumps(before, sort_keys=True)
    for old, new in (EVERY_PIPELINE if "audioset_train" in before["parameters"] else []) + CHANGES.get(name, []):
        assert old in text, f"{name}: the named change {old!r} no longer applies"
        text = text.replace(old, new)
    result = json.loads(text)
    if "audioset_train" in result["parameters"]:
        del result["parameters"]["audioset_train"]
        result["parameters"]["dataset_options"] = {"type": "STRUCT", "default": {}}
    trains_with_run_parameters = "learning_rate" in result["parameters"]
    if trains_with_run_parameters:
        result["parameters"].update(RECIPE_PARAMETERS)
    for task in result["tasks"]:
        if trains_with_run_parameters and (task["function"] in TRAINING_FUNCTIONS
                                           or task["function"].startswith("check_")):
            task["inputs"].update({key: f"param:{key}" for key in RECIPE_PARAMETERS})
        if task["function"] == f"check_{name}_parameters":
            task["function"] = "check_run_parameters"
        if name == "noisy_labels" and task["name"] not in LOOP_TASKS:
            task["inputs"] = {key: value.replace(*POOL_VIEW) for key, value in task["inputs"].items()}
        if task["function"] == "ingest_dataset":
            task["inputs"].setdefault("required_flags", "const:[]")
    result["tasks"] = result["tasks"] + ([ADDED_TASKS[name]] if name in ADDED_TASKS else [])
    text = json.dumps(result, sort_keys=True)
    for old, new in RENAMES:
        text = text.replace(old, new)
    for old, new in RECIPE_CHANGES.get(name, []):
        assert old in text, f"{name}: the recipe change {old!r} no longer applies"
        text = text.replace(old, new)
    result = json.loads(text)
    for parameter, default in RECIPE_DEFAULTS.get(name, {}).items():
        result["parameters"][parameter]["default"] = default
    result["tasks"].sort(key=lambda task: json.dumps(task, sort_keys=True))
    return result


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("compiled")
    compile_module.main(["--output-dir", str(output)])
    return interfaces(output)


def test_every_pipeline_keeps_its_parameters_task_graph_and_outputs_but_for_the_named_changes(compiled):
    before = json.loads(BEFORE.read_text())
    assert set(before) <= set(compiled)  # a pipeline added since has no earlier interface to keep
    for name in sorted(before):
        assert compiled[name] == expected(name, before[name]), name


def test_the_comparison_sees_a_rewired_input(compiled):
    before = json.loads(BEFORE.read_text())
    rewired = json.loads(json.dumps(compiled["fsd50k_baseline"]).replace('"param:epochs"', '"param:width"'))
    assert rewired != expected("fsd50k_baseline", before["fsd50k_baseline"])
