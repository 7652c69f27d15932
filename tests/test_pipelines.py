import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines import compile as compile_module
from pipelines import discover, run_local

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "registry.example.com/sound-events:1.2.3"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("compiled")
    compile_module.main(["--output-dir", str(output), "--image", IMAGE])
    return output


def load_spec(path) -> pipeline_spec_pb2.PipelineSpec:
    with open(path) as handle:
        document = next(yaml.safe_load_all(handle))
    return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())


def test_every_pipeline_compiles_to_a_valid_pipeline_spec(compiled):
    assert set(discover()) <= {path.stem for path in compiled.glob("*.yaml")}
    for path in compiled.glob("*.yaml"):
        spec = load_spec(path)
        assert spec.root.dag.tasks, path
        for executor in spec.deployment_spec.fields["executors"].struct_value.fields.values():
            if "importer" in executor.struct_value.fields:  # tag_audio's model: no container
                continue
            container = executor.struct_value.fields["container"].struct_value.fields
            assert container["image"].string_value == IMAGE


def prepared_tasks(spec) -> dict:
    """The tasks of the nested pipeline that ingests and extracts every experiment's dataset."""
    return spec.components["comp-prepare-dataset"].dag.tasks


def test_fsd50k_baseline_wires_ingest_extract_train_evaluate(compiled):
    spec = load_spec(compiled / "fsd50k_baseline.yaml")
    tasks = spec.root.dag.tasks
    assert set(tasks) == {"check-run-parameters", "prepare-dataset", "train-classifier", "evaluate-classifier",
                          "export-model"}
    assert set(prepared_tasks(spec)) == {"fingerprint-locations", "ingest-dataset", "extract-features"}
    assert list(prepared_tasks(spec)["ingest-dataset"].dependent_tasks) == ["fingerprint-locations"]
    assert list(prepared_tasks(spec)["extract-features"].dependent_tasks) == ["ingest-dataset"]
    assert list(tasks["prepare-dataset"].dependent_tasks) == ["check-run-parameters"]
    assert list(tasks["train-classifier"].dependent_tasks) == ["prepare-dataset"]
    assert set(tasks["evaluate-classifier"].dependent_tasks) == {"prepare-dataset", "train-classifier"}
    parameters = spec.root.input_definitions.parameters
    assert {"dataset_root", "epochs", "width", "beam_runner", "beam_options"} <= set(parameters)
    assert parameters["dataset_root"].default_value.string_value == ""
    outputs = spec.components["comp-evaluate-classifier"].output_definitions.artifacts
    assert outputs["metrics"].artifact_type.schema_title == "system.Metrics"
    assert outputs["report"].artifact_type.schema_title == "system.Markdown"
    assert spec.components["comp-train-classifier"].output_definitions.artifacts["model"] \
        .artifact_type.schema_title == "system.Model"


def test_run_local_params_are_typed_and_checked():
    pipeline = discover()["fsd50k_baseline"]
    arguments = run_local.parse_params(pipeline, ["epochs=3", "width=0.5", "mixed_precision=true",
                                                  'beam_options=["--direct_num_workers=2"]', "dataset_root="])
    assert arguments == {"epochs": 3, "width": 0.5, "mixed_precision": True,
                         "beam_options": ["--direct_num_workers=2"], "dataset_root": ""}
    with pytest.raises(SystemExit, match="unknown parameter"):
        run_local.parse_params(pipeline, ["epoch=3"])
    with pytest.raises(SystemExit, match="not a valid number_integer"):
        run_local.parse_params(pipeline, ["epochs=three"])


@pytest.mark.slow
def test_fsd50k_baseline_runs_locally_end_to_end(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "fsd50k_baseline",
               "--param", "synthetic_clips=60", "--param", "width=0.25", "--param", "epochs=2",
               "--param", "batch_size=16", "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for task in ("check-run-parameters", "ingest-dataset", "extract-features", "train-classifier",
                 "evaluate-classifier", "export-model"):
        assert f"[run_local] task {task}: SUCCESS" in result.stdout
    assert "| class | positives | AP |" in result.stdout
    run_dir = next(tmp_path.glob("fsd50k-baseline-*"))
    assert (run_dir / "train-classifier" / "model" / "model.keras").exists()
    assert list((run_dir / "extract-features" / "features").glob("train-*.tfrecord"))
    assert (run_dir / "export-model" / "exported" / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow
def test_run_local_fails_with_non_zero_status_on_bad_input(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "fsd50k_baseline",
               "--param", f"dataset_root={tmp_path / 'nowhere'}", "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "dataset_root=" in result.stderr and "is not a folder" in result.stderr
    assert "Executing task" not in result.stdout + result.stderr  # refused before submission


def test_split_study_loops_over_strategies_and_collects_results(compiled):
    spec = load_spec(compiled / "split_study.yaml")
    tasks = spec.root.dag.tasks
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    assert loop.parameter_iterator.items.input_parameter.endswith("strategies")
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"split-dev-set", "resplit-features", "train-classifier", "evaluate-split-strategy"} <= set(inner)
    assert "extract-features" in prepared_tasks(spec) and "extract-features" not in inner  # decoded once, viewed
    assert list(tasks["summarize-split-study"].dependent_tasks) == [next(n for n in tasks if n.startswith("for-loop"))]
    strategies = spec.root.input_definitions.parameters["strategies"].default_value.list_value.values
    assert [value.string_value for value in strategies] == ["random", "iterative_stratification", "uploader"]


def decoded_clips(pipeline_root, run_prefix) -> int:
    """Clips that the run's extraction tasks read, i.e. decoded, over all of them."""
    counts = pipeline_root.glob(f"{run_prefix}-*/extract-features*/features/counts.json")
    return sum(split["read"] for path in counts for split in json.loads(path.read_text()).values())


@pytest.mark.slow
def test_split_study_runs_locally_and_reports_every_strategy(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "split_study",
               "--param", "synthetic_clips=60", "--param", "width=0.25", "--param", "epochs=1",
               "--param", "batch_size=16", "--param", 'strategies=["random", "uploader"]',
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("split-study-*/summarize-split-study/report")).read_text()
    assert decoded_clips(tmp_path, "split-study") == 60  # one extraction; each strategy is a view of it
    rows = [line for line in report.splitlines() if line.startswith("| random") or line.startswith("| uploader")]
    assert len(rows) == 2
    uploader_row = next(row for row in rows if row.startswith("| uploader"))
    assert uploader_row.split("|")[2].strip() == "0"  # no within-class contamination


def test_shift_invariance_loops_over_pooling_and_mixup_variants(compiled):
    spec = load_spec(compiled / "shift_invariance.yaml")
    tasks = spec.root.dag.tasks
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"train-classifier", "evaluate-shift-invariance"} <= set(inner)
    variants = spec.root.input_definitions.parameters["pooling_variants"].default_value.list_value.values
    pairs = {(v.struct_value.fields["pooling"].string_value, v.struct_value.fields["mixup_alpha"].number_value)
             for v in variants}
    assert {pooling for pooling, _ in pairs} == {"max", "blurpool3", "blurpool5", "tlpf", "aps", "tlpf_aps"}
    assert {alpha for _, alpha in pairs} == {0.0, 0.3}
    outputs = spec.components["comp-summarize-shift-invariance"].output_definitions.artifacts
    assert outputs["page"].artifact_type.schema_title == "system.HTML"
    assert spec.root.input_definitions.parameters["architecture"].default_value.string_value == "vgg41"


@pytest.mark.slow
def test_shift_invariance_runs_locally_and_writes_table_and_plot(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "shift_invariance",
               "--param", "synthetic_clips=60", "--param", "width=0.125", "--param", "epochs=1",
               "--param", "batch_size=16",
               "--param", 'pooling_variants=[{"pooling": "max", "mixup_alpha": 0}, {"pooling": "tlpf_aps", "mixup_alpha": 0.3}]',
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = next(tmp_path.glob("shift-invariance-*/summarize-shift-invariance"))
    report = (summary / "report").read_text()
    assert "| max |" in report and "| tlpf_aps + mixup 0.3 |" in report
    assert "data:image/png;base64," in (summary / "page").read_text()


def test_task_timer_pairs_concurrent_iterations_by_thread(capsys):
    import logging

    timer = run_local.TaskTimer()

    def record(message, thread, created):
        entry = logging.LogRecord("root", logging.INFO, __file__, 1, message, None, None)
        entry.thread, entry.created = thread, created
        return entry

    for message, thread, created in [("Executing task \x1b[96m'train'\x1b[0m", 1, 100.0),
                                     ("Executing task 'train'", 2, 110.0),
                                     ("Task 'train' finished with status SUCCESS", 2, 130.0),
                                     ("Task 'train' finished with status SUCCESS", 1, 160.0)]:
        assert timer.filter(record(message, thread, created))
    assert timer.finished == [("train", "SUCCESS", 20.0), ("train", "SUCCESS", 60.0)]
    assert "took 60.0 s" in capsys.readouterr().out


def test_missing_labels_wires_teacher_scoring_and_a_loop_over_tc(compiled):
    spec = load_spec(compiled / "missing_labels.yaml")
    tasks = spec.root.dag.tasks
    assert {"prepare-dataset", "split-dev-set", "resplit-features", "train-classifier", "score-clips",
            "summarize-missing-labels"} <= set(tasks)
    assert set(tasks["score-clips"].dependent_tasks) == {"resplit-features", "train-classifier"}
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    assert loop.parameter_iterator.items.input_parameter.endswith("tc_percents")
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"relabel-missing", "train-classifier-2", "evaluate-student"} <= set(inner)
    student_loss = inner["train-classifier-2"].inputs.parameters["loss"].runtime_value.constant.string_value
    assert student_loss == "masked_bce"
    tcs = spec.root.input_definitions.parameters["tc_percents"].default_value.list_value.values
    assert len(tcs) == 18 and tcs[0].number_value == 0 and tcs[-1].number_value == 20  # the thesis' 18 label sets
    assert spec.root.input_definitions.parameters["train_fraction"].default_value.number_value == 1.0


@pytest.mark.slow
def test_missing_labels_runs_locally_and_plots_map_against_tc(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "missing_labels",
               "--param", "synthetic_clips=80", "--param", "width=0.25", "--param", "epochs=1",
               "--param", "batch_size=16", "--param", "tc_percents=[0, 20]", "--param", "train_fraction=0.8",
               "--param", "teacher_architecture=vgg_like",
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = next(tmp_path.glob("missing-labels-*/summarize-missing-labels"))
    report = (summary / "report").read_text()
    rows = [line.split("|") for line in report.splitlines() if line.startswith("| 0 ") or line.startswith("| 20 ")]
    assert len(rows) == 2
    assert rows[0][2].strip() == "0" and int(rows[1][2]) > 0  # flagged entries: none at tc 0, some at 20 %
    assert float(rows[1][3]) >= 0  # flag precision is known on synthetic data
    assert "data:image/png;base64," in (summary / "page").read_text()


def test_noisy_labels_crosses_train_sets_with_losses_and_adds_instance_selection(compiled):
    spec = load_spec(compiled / "noisy_labels.yaml")
    tasks = spec.root.dag.tasks
    variants = spec.root.input_definitions.parameters["loss_variants"].default_value.list_value.values
    grid = {(v.struct_value.fields["train_set"].string_value, v.struct_value.fields["loss"].string_value)
            for v in variants}
    assert grid == {(train_set, loss) for train_set in ("clean", "noisy", "noisy_and_clean")
                    for loss in ("cce", "lq", "lsoft", "cce_max", "cce_outlier", "label_smoothing")} | {
        ("noisy_small", "cce")}  # clean and noisy labels at equal size
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"select-train-set", "resplit-features", "train-classifier", "evaluate-single-label"} <= set(inner)
    assert not [name for name in tasks if name.startswith("extract-features")]  # once, in prepare-dataset
    assert [name for name in prepared_tasks(spec) if name.startswith("extract-features")] == ["extract-features"]
    # the pruning branch: stage-1 scoring -> pruning -> training continued from the stage-1 checkpoint
    assert "score-clips" in tasks and "prune-train-set" in tasks
    pruned_stage2 = next(task for task in tasks.values() if "prune-train-set" in task.dependent_tasks)
    assert pruned_stage2.component_ref.name.startswith("comp-fine-tune-classifier")
    discard = [task for task in tasks.values() if task.component_ref.name.startswith("comp-fine-tune")
               and "discard_percentile" in str(task.inputs.parameters["loss_params"])]
    assert len(discard) == 1
    outputs = spec.components["comp-evaluate-single-label"].output_definitions.artifacts
    assert outputs["confusion"].artifact_type.schema_title == "system.ClassificationMetrics"


def test_dcase2019_task2_fine_tunes_the_noisy_model_on_curated(compiled):
    spec = load_spec(compiled / "dcase2019_task2.yaml")
    tasks = spec.root.dag.tasks
    fine_tune = tasks["fine-tune-classifier"]
    assert "train-classifier" in fine_tune.dependent_tasks
    sources = {task.inputs.parameters["source_splits"].runtime_value.constant.list_value.values[0].string_value
               for name, task in tasks.items() if name.startswith("select-train-set")}
    assert sources == {"train_noisy", "train_curated"}
    assert "summarize-dcase2019" in tasks


@pytest.mark.slow
def test_noisy_labels_runs_locally_with_instance_selection(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "noisy_labels",
               "--param", "synthetic_clips=60", "--param", "width=0.25", "--param", "epochs=1",
               "--param", "stage1_epochs=1", "--param", "stage2_epochs=1", "--param", "batch_size=16",
               "--param", "discard_stage1_epochs=1",
               "--param", 'loss_variants=[{"train_set": "noisy", "flag": "!manually_verified", "loss": "cce_outlier"}]',
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("noisy-labels-*/summarize-noisy-labels/report")).read_text()
    assert "| noisy | cce_outlier |" in report
    assert decoded_clips(tmp_path, "noisy-labels") == 60  # the variant's and the pool's train sets are views
    for selection in ("none", "batch_discard", "pruning"):
        assert f"| noisy | lq | {selection} |" in report  # instance selection runs on the noisy set
    pruned = next(tmp_path.glob("noisy-labels-*/prune-train-set/pruned"))
    assert (pruned / "pruned.csv").exists() and (pruned / "prune_report.json").exists()


@pytest.mark.slow
def test_dcase2019_task2_runs_locally_and_reports_lwlrap(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "dcase2019_task2",
               "--param", "synthetic_clips=60", "--param", "width=0.25", "--param", "noisy_epochs=1",
               "--param", "curated_epochs=1", "--param", "batch_size=16", "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("dcase2019-task2-*/summarize-dcase2019/report")).read_text()
    assert decoded_clips(tmp_path, "dcase2019-task2") == 60  # one extraction; the two train sets are views
    for name in ("noisy only", "noisy then curated (warm start)", "curated only"):
        assert f"| {name} |" in report
    assert "| class | positives | AP | AUC | d' | lwlrap |" in result.stdout


def test_dataset_creation_nominates_validates_and_assembles_both_layouts(compiled):
    tasks = load_spec(compiled / "dataset_creation.yaml").root.dag.tasks
    assert {"nominate-candidates", "validate-candidates", "assemble-dataset", "assemble-dataset-2"} <= set(tasks)
    formats = {tasks[name].inputs.parameters["release_format"].runtime_value.constant.string_value
               for name in ("assemble-dataset", "assemble-dataset-2")}
    assert formats == {"fsd50k", "fsdnoisy18k"}


@pytest.mark.slow
def test_a_created_dataset_trains_through_the_baseline(tmp_path):
    def run_local(*arguments):
        command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    run_local("dataset_creation", "--param", "synthetic_clips=400", "--param", "min_clips=12",
              "--pipeline-root", str(tmp_path / "creation"))
    assembled = "dataset-creation-*/assemble-dataset*"
    created = next((tmp_path / "creation").glob(f"{assembled}/dataset/FSD50K.ground_truth")).parent
    report = next((tmp_path / "creation").glob(f"{assembled}/report")).read_text()
    assert "uploaders on both sides: 0" in report and "| Trill |" in report  # merged into its parent
    assert next((tmp_path / "creation").glob(f"{assembled}/dataset/FSDnoisy18k.meta/train.csv"))
    run_local("fsd50k_baseline", "--param", f"dataset_root={created}", "--param", "epochs=1", "--param", "width=0.125",
              "--param", "batch_size=16", "--pipeline-root", str(tmp_path / "baseline"))
    evaluation = next((tmp_path / "baseline").glob("fsd50k-baseline-*/evaluate-classifier/report")).read_text()
    assert "| Sweep |" in evaluation and "| Trill |" not in evaluation
    noisy = next((tmp_path / "creation").glob(f"{assembled}/dataset/FSDnoisy18k.meta")).parent
    run_local("noisy_labels", "--param", f"dataset_root={noisy}", "--param", "epochs=1", "--param", "stage1_epochs=1",
              "--param", "stage2_epochs=1", "--param", "discard_stage1_epochs=1", "--param", "width=0.125",
              "--param", "batch_size=16", "--param", "val_fraction=0.3",  # 11 noisy clips: 3 for validation
              "--param",
              'loss_variants=[{"train_set": "noisy_and_clean", "flag": "", "loss": "lq"}]',
              "--pipeline-root", str(tmp_path / "noisy"))
    assert "| noisy_and_clean | lq |" in next((tmp_path / "noisy").glob("noisy-labels-*/summarize-noisy-labels/report")
                                               ).read_text()


@pytest.mark.slow
def test_dcase2018_task2_runs_locally_and_reports_map_at_3(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "dcase2018_task2",
               "--param", "synthetic_clips=80", "--param", "width=0.25", "--param", "epochs=1",
               "--param", "batch_size=16", "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("dcase2018-task2-*/summarize-dcase2018/report")).read_text()
    assert decoded_clips(tmp_path, "dcase2018-task2") == 80  # one extraction; the two train sets are views
    rows = [line.split("|") for line in report.splitlines() if line.startswith("| all |")
            or line.startswith("| verified |")]
    assert len(rows) == 2
    train_clips = {row[1].strip(): int(row[2]) for row in rows}
    assert train_clips["verified"] < train_clips["all"]  # the verified clips are a part of the train set
    assert all(0 < float(row[3]) <= 1 for row in rows)  # MAP@3
    assert next(tmp_path.glob("dcase2018-task2-*/export-model/exported/saved_model"))


def test_contrastive_ssl_pretrains_once_and_compares_four_uses_per_downstream_set(compiled):
    spec = load_spec(compiled / "contrastive_ssl.yaml")
    tasks = spec.root.dag.tasks
    assert "pretrain-contrastive" in tasks
    clips = tasks["extract-features"].inputs.parameters["whole_clips"].runtime_value.constant.bool_value
    assert clips  # pretraining reads whole clips (temporal proximity sampling)
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    assert loop.parameter_iterator.items.input_parameter.endswith("downstream_sets")
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"evaluate-knn", "train-on-encoder", "train-on-encoder-2", "train-classifier"} <= set(inner)
    frozen = {inner[name].inputs.parameters["freeze"].runtime_value.constant.bool_value
              for name in ("train-on-encoder", "train-on-encoder-2")}
    assert frozen == {True, False}
    parameters = spec.root.input_definitions.parameters
    assert {"tps", "mix_back", "augmentations", "temperature"} <= set(parameters)
    assert parameters["temperature"].default_value.number_value == 0.2


@pytest.mark.slow
def test_contrastive_ssl_runs_locally_and_reports_every_method(tmp_path):
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "contrastive_ssl",
               "--param", "synthetic_clips=100", "--param", "val_fraction=0.3", "--param", "architecture=vgg_like",
               "--param", "width=0.125",
               "--param", "pretrain_epochs=1", "--param", "pretrain_batch_size=8", "--param", "downstream_epochs=1",
               "--param", "batch_size=16", "--param", "knn_k=5", "--param", "tps=false",
               "--param", 'downstream_sets=[{"train_set": "clean", "flag": "manually_verified"}]',
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("contrastive-ssl-*/summarize-contrastive/report")).read_text()
    row = next(line for line in report.splitlines() if line.startswith("| clean |"))
    cells = [cell.strip() for cell in row.split("|")[2:6]]  # knn, linear, fine_tuned, scratch
    assert len(cells) == 4 and all(0 <= float(cell) <= 1 for cell in cells)
    exported = next(tmp_path.glob("contrastive-ssl-*/export-model/exported"))
    assert json.loads((exported / "export.json").read_text())["vocabulary"] == []  # an encoder: embeddings only


def test_separation_ssl_trains_the_separator_once_and_an_encoder_per_setting(compiled):
    spec = load_spec(compiled / "separation_ssl.yaml")
    tasks = spec.root.dag.tasks
    assert {"train-separator", "evaluate-separator", "separate-channels", "summarize-separation-ssl"} <= set(tasks)
    assert "train-separator" in tasks["separate-channels"].dependent_tasks
    assert "check-run-parameters" in tasks["prepare-dataset"].dependent_tasks  # bad settings fail first
    loop = next(task for name, task in tasks.items() if name.startswith("for-loop"))
    assert loop.parameter_iterator.items.input_parameter.endswith("settings")
    inner = spec.components[loop.component_ref.name].dag.tasks
    assert {"pretrain-separation-ssl", "train-on-encoder", "evaluate-classifier"} <= set(inner)
    assert inner["train-on-encoder"].inputs.parameters["freeze"].runtime_value.constant.bool_value
    parameters = spec.root.input_definitions.parameters
    settings = json_format.MessageToDict(parameters["settings"].default_value)
    assert {(s["proxy_tasks"], s["view"]) for s in settings} == {
        (tasks_, view) for tasks_ in ("sm", "cp", "sm+cp") for view in ("mixture", "channel")}
    assert any(s["view"] == "channel" and not s["checkpoints"] for s in settings)  # the "OR" rule
    assert {"separator_channels", "checkpoint_steps", "cp_weight", "shallow_hidden_units"} <= set(parameters)


@pytest.mark.slow
def test_separation_ssl_runs_locally_and_reports_separation_and_downstream(tmp_path):
    settings = ('[{"name": "sm_cp_channel_or", "proxy_tasks": "sm+cp", "view": "channel", "checkpoints": []},'
                ' {"name": "cp_mixture", "proxy_tasks": "cp", "view": "mixture", "checkpoints": []}]')
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "separation_ssl",
               "--param", "synthetic_clips=100", "--param", "val_fraction=0.3", "--param", "architecture=vgg_like",
               "--param", "width=0.125", "--param", "separator_steps=4", "--param", "checkpoint_steps=[2,4]",
               "--param", "separator_batch_size=2", "--param", "evaluation_mixtures=3",
               "--param", "pretrain_epochs=1", "--param", "pretrain_batch_size=8", "--param", "shallow_epochs=1",
               "--param", "shallow_hidden_units=16", "--param", "batch_size=16", "--param", f"settings={settings}",
               "--pipeline-root", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(tmp_path.glob("separation-ssl-*/summarize-separation-ssl/report")).read_text()
    for name in ("sm_cp_channel_or", "cp_mixture"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        mean_ap, d_prime = (float(cell) for cell in row.split("|")[5:7])
        assert 0 < mean_ap <= 1 and np.isfinite(d_prime)
    separation_rows = [line for line in report.split("## Separator")[1].splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in separation_rows[1:]] == ["0 (untrained)", "2", "4"]


def test_tag_audio_imports_a_model_and_tags_with_beam(compiled):
    spec = load_spec(compiled / "tag_audio.yaml")
    tasks = spec.root.dag.tasks
    assert {"check-run-parameters", "importer", "tag-audio-files"} <= set(tasks)
    assert "check-run-parameters" in tasks["importer"].dependent_tasks
    parameters = spec.root.input_definitions.parameters
    assert not parameters["model_uri"].is_optional and not parameters["audio"].is_optional  # no synthetic default
    baseline = load_spec(compiled / "fsd50k_baseline.yaml")
    export_task = baseline.root.dag.tasks["export-model"]
    assert export_task.inputs.artifacts["model"].task_output_artifact.producer_task == "train-classifier"
    exported = baseline.components["comp-export-model"].output_definitions.artifacts["exported"]
    assert exported.artifact_type.schema_title == "system.Model"


@pytest.mark.slow
def test_tag_audio_runs_locally_on_a_model_folder(tiny_classifier_dir, synthetic_root, tmp_path):
    model_dir = tiny_classifier_dir
    command = [sys.executable, os.path.join(REPOSITORY, "pipelines", "run_local.py"), "tag_audio",
               "--param", f"model_uri={model_dir}", "--param", f'audio=["{synthetic_root}"]',
               "--param", "timestamps=true",
               "--pipeline-root", str(tmp_path / "runs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scores = next((tmp_path / "runs").glob("tag-audio-*/tag-audio-files/scores"))
    summary = json.loads((scores / "tagging.json").read_text())
    assert summary["tagged"] == summary["files"] > 0 and summary["rejected"] == 0
    assert list(scores.glob("patches-*.csv"))
    assert "# Tagging:" in result.stdout


def test_the_drawn_task_graph_has_every_task_and_each_artifact_it_passes(compiled):
    from pipelines.draw import dot_source

    with open(compiled / "fsd50k_baseline.yaml") as handle:
        source = dot_source(next(yaml.safe_load_all(handle)))
    for label in ("check parameters", "ingest", "extract log-mel features", "train", "evaluate"):
        assert f'[label="{label}"]' in source
    assert 'subgraph "cluster_root/prepare-dataset"' in source and 'label="prepare the dataset"' in source
    for edge in ('"root/prepare-dataset/ingest-dataset" -> "root/prepare-dataset/extract-features"',
                 '"root/prepare-dataset/extract-features" -> "root/train-classifier"',
                 '"root/train-classifier" -> "root/evaluate-classifier"',
                 '"root/check-run-parameters" -> "root/prepare-dataset/extract-features" [style=dashed, '
                 'lhead="cluster_root/prepare-dataset"]'):
        assert edge in source
    with open(compiled / "noisy_labels.yaml") as handle:
        loop = dot_source(next(yaml.safe_load_all(handle)))
    assert 'label="for each of loss_variants"' in loop
    assert '"root/prepare-dataset/extract-features" -> "root/for-loop-1/resplit-features"' in loop  # into the loop
    assert '"root/for-loop-1/evaluate-single-label" -> "root/summarize-noisy-labels"' in loop  # collected out of it
