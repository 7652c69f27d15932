"""Every experiment's pipeline, run locally (tiny settings) on a replica of a released dataset layout
(tests/replicas.py) or of a researcher's own folder, through `run_local.py` as a user runs it."""
import json
import os
import subprocess
import sys

import pytest

from replicas import REPLICAS, own_folder

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"width": "0.125", "batch_size": "8"}

# pipeline -> (dataset format, its settings, the report task and a line every report must have)
RUNS = {
    "fsd50k_baseline": ("fsd50k", {"epochs": "1"}, "evaluate-classifier", "| Male_speech_and_man_speaking |"),
    "split_study": ("fsd50k", {"epochs": "1", "strategies": '["uploader"]'}, "summarize-split-study",
                    "| uploader |"),
    "shift_invariance": ("folder", {"epochs": "1", "pooling_variants": '[{"pooling": "aps", "mixup_alpha": 0.0}]'},
                         "summarize-shift-invariance", "| aps |"),
    "missing_labels": ("audioset", {"epochs": "1", "tc_percents": "[0, 20]", "teacher_architecture": "vgg_like"},
                       "summarize-missing-labels", "| 20 |"),
    "noisy_labels": ("fsdnoisy18k", {"epochs": "1", "stage1_epochs": "1", "stage2_epochs": "1",
                                     "discard_stage1_epochs": "1",
                                     "loss_variants": '[{"train_set": "clean", "flag": "manually_verified", '
                                                 '"loss": "lq"}]'},
                     "summarize-noisy-labels", "| clean | lq |"),
    "dcase2019_task2": ("fsdkaggle2019", {"noisy_epochs": "1", "curated_epochs": "1"}, "summarize-dcase2019",
                        "| noisy then curated (warm start) |"),
    "dcase2018_task2": ("fsdkaggle2018", {"epochs": "1", "val_fraction": "0.3"}, "summarize-dcase2018", "| verified |"),
    "contrastive_ssl": ("fsdnoisy18k", {"architecture": "vgg_like", "pretrain_epochs": "1",
                                        "pretrain_batch_size": "8", "downstream_epochs": "1", "knn_k": "3",
                                        "tps": "false", "val_fraction": "0.3",
                                        "downstream_sets": '[{"train_set": "clean", "flag": "manually_verified"}]'},
                        "summarize-contrastive", "| clean |"),
    "separation_ssl": ("folder", {"architecture": "vgg_like", "separator_steps": "2", "checkpoint_steps": "[2]",
                                  "separator_batch_size": "2", "evaluation_mixtures": "2", "pretrain_epochs": "1",
                                  "pretrain_batch_size": "8", "shallow_epochs": "1", "shallow_hidden_units": "8",
                                  "settings": '[{"name": "sm_cp_channel", "proxy_tasks": "sm+cp", '
                                              '"view": "channel", "checkpoints": []}]'},
                       "summarize-separation-ssl", "| sm_cp_channel |"),
}


def run_local(pipeline: str, params: dict, runs) -> subprocess.CompletedProcess:
    """`run_local.py PIPELINE --param NAME=VALUE ...` as a user runs it, with the tiny settings; must succeed."""
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), pipeline, "--pipeline-root",
               str(runs)]
    for name, value in {**TINY, **params}.items():
        command += ["--param", f"{name}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(RUNS))
def test_every_experiment_runs_on_a_released_layout(pipeline, tmp_path):
    dataset_format, settings, report_task, expected_line = RUNS[pipeline]
    root = REPLICAS[dataset_format](tmp_path / "dataset")
    run_local(pipeline, {**settings, "dataset_root": str(root), "dataset_format": dataset_format}, tmp_path / "runs")
    report = next((tmp_path / "runs").glob(f"*/{report_task}/report")).read_text()
    assert expected_line in report, report
    manifest = next((tmp_path / "runs").glob("*/ingest-dataset/manifest"))
    assert not list(manifest.glob("synthetic_*"))  # the replica was read, nothing was generated


# A folder of class folders without split folders, through the experiments that need val or held-out splits.
OWN_FOLDER_RUNS = {"fsd50k_baseline": ({"epochs": "1"}, "evaluate-classifier", "| dog bark |"),
                   "shift_invariance": ({"epochs": "1", "pooling_variants": '[{"pooling": "max", "mixup_alpha": 0.0}]'},
                                        "summarize-shift-invariance", "| max |"),
                   "contrastive_ssl": (RUNS["contrastive_ssl"][1] | {"pretrain_flag": "",  # no manually_verified
                                                                     "downstream_sets": '[{"train_set": "all", '
                                                                                         '"flag": ""}]'},
                                       "summarize-contrastive", "| all |")}


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(OWN_FOLDER_RUNS))
def test_a_folder_of_class_folders_gets_its_splits_made_and_runs(pipeline, tmp_path):
    settings, report_task, expected_line = OWN_FOLDER_RUNS[pipeline]
    root = own_folder(tmp_path / "dataset")
    result = run_local(pipeline, {**settings, "dataset_root": str(root), "dataset_format": "folder",
                                  "dataset_options": '{"group_by": "prefix"}'}, tmp_path / "runs")
    assert "no split folders; made the splits" in result.stdout + result.stderr
    assert expected_line in next((tmp_path / "runs").glob(f"*/{report_task}/report")).read_text()
    manifest = next((tmp_path / "runs").glob("*/ingest-dataset/manifest"))
    made = json.loads((manifest / "made_splits.json").read_text())
    assert made["grouped_by"] == "prefix" and sum(made["clips"].values()) == 36
    sides = {}
    for line in (manifest / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        sides.setdefault(row["uploader"], set()).add(row["split"])
    assert len(sides) == 12 and all(len(splits) == 1 for splits in sides.values())  # a session on one side

