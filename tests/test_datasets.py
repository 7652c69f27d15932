import shutil

import pytest

from beam_jobs import ingest, synthetic
from beam_jobs.datasets import fsd50k
from beam_jobs.contracts.manifest import DatasetError, read_manifest


def test_reads_synthetic_fsd50k_into_a_manifest(synthetic_root, manifest_dir):
    manifest = read_manifest(manifest_dir)
    assert manifest.vocabulary == synthetic.VOCABULARY
    assert len(manifest.rows) == 60
    assert set(manifest.splits) == {"train", "val", "eval"}
    row = manifest.rows[0]
    assert row.audio_path.endswith(f"FSD50K.dev_audio/{row.clip_id}.wav") and row.uploader.startswith("user")
    assert manifest.source == {"format": "fsd50k", "root": synthetic_root, "ignored": []}


@pytest.fixture
def dataset_copy(synthetic_root, tmp_path):
    """A writable copy of the ground truth, audio folders linked."""
    root = tmp_path / "fsd50k"
    shutil.copytree(synthetic_root, root, ignore=shutil.ignore_patterns("*.wav"))
    return root


def edit_line(path, number, new_line):
    lines = path.read_text().splitlines()
    lines[number - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


def expect_error(root, pattern):
    with pytest.raises(DatasetError, match=pattern):
        fsd50k.read_fsd50k(str(root))


def test_label_outside_vocabulary_names_file_and_row(dataset_copy):
    dev = dataset_copy / fsd50k.GROUND_TRUTH / "dev.csv"
    edit_line(dev, 3, '100001,"Meow,Tonal","/m/meow,/t/syn_tonal",train')
    expect_error(dataset_copy, r"dev\.csv:3: labels not in the vocabulary: \['Meow'\]")


def test_malformed_csv_row_names_file_and_row(dataset_copy):
    evaluation = dataset_copy / fsd50k.GROUND_TRUTH / "eval.csv"
    edit_line(evaluation, 2, "100048,Chirp")
    expect_error(dataset_copy, r"eval\.csv:2: expected 3 fields")


def test_wrong_header_is_reported(dataset_copy):
    edit_line(dataset_copy / fsd50k.GROUND_TRUTH / "dev.csv", 1, "fname,labels,split")
    expect_error(dataset_copy, r"dev\.csv:1: header fname,labels,split lacks columns \[.mids.\]")


def test_vocabulary_with_a_header_is_rejected(dataset_copy):
    vocabulary = dataset_copy / fsd50k.GROUND_TRUTH / "vocabulary.csv"
    vocabulary.write_text("index,label,mid\n" + vocabulary.read_text())
    expect_error(dataset_copy, r"vocabulary\.csv:1: index 'index' is not an integer")


def test_mids_that_disagree_with_labels_are_rejected(dataset_copy):
    edit_line(dataset_copy / fsd50k.GROUND_TRUTH / "dev.csv", 2, '100000,"Knock","/t/syn_hum",train')
    expect_error(dataset_copy, r"dev\.csv:2: mids \['/t/syn_hum'\] do not match labels")


def test_bad_dev_split_value(dataset_copy):
    edit_line(dataset_copy / fsd50k.GROUND_TRUTH / "dev.csv", 2, '100000,"Knock","/t/syn_knock",test')
    expect_error(dataset_copy, r"dev\.csv:2: split 'test'")


def test_empty_dataset_fails_before_work(dataset_copy, tmp_path):
    truth = dataset_copy / fsd50k.GROUND_TRUTH
    (truth / "dev.csv").write_text("fname,labels,mids,split\n")
    (truth / "eval.csv").write_text("fname,labels,mids\n")
    with pytest.raises(DatasetError, match="list no clips"):
        ingest.ingest(str(dataset_copy), str(tmp_path / "manifest"))
    assert not (tmp_path / "manifest").exists()


def test_missing_ground_truth_file(dataset_copy):
    (dataset_copy / fsd50k.GROUND_TRUTH / "eval.csv").unlink()
    expect_error(dataset_copy, r"eval\.csv: file not found")


def test_duplicate_clip_across_dev_and_eval(dataset_copy):
    edit_line(dataset_copy / fsd50k.GROUND_TRUTH / "eval.csv", 2, '100000,"Knock","/t/syn_knock"')
    expect_error(dataset_copy, "listed twice")
