"""Component bodies that hold logic of their own, called through their `python_func` with artifacts on local
paths (as kfp.local and a KFP pod give them), so that a wrong component fails here, without a pipeline run."""
import json

import pytest
from kfp.dsl import Dataset, Markdown, Metrics

from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow, read_manifest, write_manifest
from beam_jobs.splits import read_split_report
from components.data import extract_features, ingest_dataset, select_train_set, split_dev_set
from components.studies import summarize_dcase2018, summarize_dcase2019


def artifact(kind, path, **metadata):
    return kind(uri=str(path), metadata=dict(metadata))


@pytest.fixture
def manifest(tmp_path):
    """Forty development clips (eight uploaders, two classes; half flagged manually verified) and ten eval."""
    rows = [ManifestRow(f"d{i}", f"/audio/d{i}.wav", "train", ("Bark" if i % 2 else "Chime",), uploader=f"u{i % 8}",
                        flags={"manually_verified": i < 20}) for i in range(40)]
    rows += [ManifestRow(f"e{i}", f"/audio/e{i}.wav", "eval", ("Bark",), uploader="x", flags={}) for i in range(10)]
    path = tmp_path / "manifest"
    write_manifest(str(path), Manifest(rows=tuple(rows), vocabulary=("Bark", "Chime"), source={"format": "test"}))
    return artifact(Dataset, path)


def splits_of(path) -> dict[str, int]:
    counts = {}
    for row in read_manifest(str(path)).rows:
        counts[row.split] = counts.get(row.split, 0) + 1
    return counts


def test_split_dev_set_keeps_a_share_of_train_and_reports_the_clips_kept(manifest, tmp_path):
    output = artifact(Dataset, tmp_path / "split")
    split_dev_set.python_func(manifest=manifest, strategy="uploader", val_fraction=0.25, seed=0,
                              split_manifest=output, train_fraction=0.5)
    counts = splits_of(output.path)
    full = artifact(Dataset, tmp_path / "full")
    split_dev_set.python_func(manifest=manifest, strategy="uploader", val_fraction=0.25, seed=0, split_manifest=full)
    all_train = splits_of(full.path)["train"]
    assert counts["eval"] == 10 and counts["val"] == splits_of(full.path)["val"]
    assert counts["train"] == round(0.5 * all_train)
    assert read_split_report(output.path)["train_clips"] == counts["train"]  # the report follows the subsample
    assert output.metadata["strategy"] == "uploader" and output.metadata["applied"] == "uploader"


def test_select_train_set_pools_the_flagged_clips_and_keeps_the_held_out_split(manifest, tmp_path):
    output = artifact(Dataset, tmp_path / "noisy")
    select_train_set.python_func(manifest=manifest, source_splits=["train"], flag="!manually_verified",
                                 val_fraction=0.25, seed=0, split_manifest=output)
    rows = read_manifest(output.path).rows
    pool = {row.clip_id for row in rows if row.split in ("train", "val")}
    assert pool == {f"d{i}" for i in range(20, 40)}
    assert {row.clip_id for row in rows if row.split == "eval"} == {f"e{i}" for i in range(10)}
    assert output.metadata["train_clips"] + output.metadata["val_clips"] == 20
    assert output.metadata["flag"] == "!manually_verified"


def test_ingest_generates_a_synthetic_dataset_for_an_empty_root_and_checks_the_needs(tmp_path):
    manifest = artifact(Dataset, tmp_path / "manifest")
    ingest_dataset.python_func(dataset_root="", dataset_format="audioset", synthetic_clips=50, seed=1,
                               beam_runner="DirectRunner", beam_options=[], manifest=manifest,
                               required_splits=["train", "eval"], dataset_options={"train_subsets": "balanced"})
    rows = read_manifest(manifest.path).rows
    assert manifest.metadata["clips"] == len(rows) == 50
    assert manifest.metadata["dataset_root"] == f"{manifest.path}/synthetic_audioset"  # inside the output
    with pytest.raises(DatasetError, match=r"needs the splits \['train', 'test'\]"):
        ingest_dataset.python_func(dataset_root=manifest.metadata["dataset_root"], dataset_format="audioset",
                                   synthetic_clips=50, seed=1, beam_runner="DirectRunner", beam_options=[],
                                   manifest=artifact(Dataset, tmp_path / "again"), required_splits=["train", "test"])
    with pytest.raises(DatasetError, match="'fsd50k' takes no dataset options"):
        ingest_dataset.python_func(dataset_root="", dataset_format="fsd50k", synthetic_clips=50, seed=1,
                                   beam_runner="DirectRunner", beam_options=[],
                                   manifest=artifact(Dataset, tmp_path / "options"),
                                   dataset_options={"train_subsets": "both"})

    features = artifact(Dataset, tmp_path / "clips")
    extract_features.python_func(manifest=manifest, beam_runner="DirectRunner", beam_options=[], features=features,
                                 whole_clips=True, feature_params='{"n_mels": 64}')
    params = json.loads((tmp_path / "clips" / "params.json").read_text())
    assert params["whole_clips"] is True and params["n_mels"] == 64  # the preset's fields and the component's
    assert sum(split["written"] + split["rejected"] for split in features.metadata["counts"].values()) == 50


def test_the_dcase_summaries_log_each_schemes_metric_and_report_the_train_set_sizes(tmp_path):
    results, train_sets = [], []
    for name, score, clips in (("all", 0.75, 120), ("verified", 0.5, 40)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"train_set": name, "map_at_3": score, "accuracy": score, "balanced_accuracy": score,
                                    "clips": 30}))
        results.append(artifact(Dataset, path))
        train_sets.append(artifact(Dataset, tmp_path / f"{name}_set", train_clips=clips))
    metrics, report = Metrics(uri=str(tmp_path / "metrics")), Markdown(uri=str(tmp_path / "report.md"))
    summarize_dcase2018.python_func(all_result=results[0], all_train_set=train_sets[0], verified_result=results[1],
                                    verified_train_set=train_sets[1], metrics=metrics, report=report)
    assert metrics.metadata == {"all_map_at_3": 0.75, "verified_map_at_3": 0.5}
    table = (tmp_path / "report.md").read_text()
    assert "| all | 120 | 0.7500 |" in table and "| verified | 40 | 0.5000 |" in table

    schemes = [artifact(Metrics, tmp_path / name, lwlrap=value, mAP=value / 2)
               for name, value in (("noisy", 0.5), ("fine_tuned", 0.75), ("curated", 0.625))]
    metrics, report = Metrics(uri=str(tmp_path / "metrics2")), Markdown(uri=str(tmp_path / "report2.md"))
    summarize_dcase2019.python_func(noisy_only=schemes[0], noisy_then_curated=schemes[1], curated_only=schemes[2],
                                    metrics=metrics, report=report)
    assert metrics.metadata == {"noisy_only_lwlrap": 0.5, "noisy_then_curated_lwlrap": 0.75,
                                "curated_only_lwlrap": 0.625}
    assert "| noisy then curated (warm start) | 0.7500 | 0.3750 |" in (tmp_path / "report2.md").read_text()
