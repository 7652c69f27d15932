"""Each adapter reads a small fixture written in its dataset's exact on-disk format."""
import json
import os

import numpy as np
import pytest
import soundfile

from beam_jobs import ingest
from beam_jobs.datasets.audioset import read_audioset
from beam_jobs.datasets.folder import read_folder
from beam_jobs.datasets.fsdkaggle2018 import read_fsdkaggle2018
from beam_jobs.datasets.fsdkaggle2019 import read_fsdkaggle2019
from beam_jobs.datasets.fsdnoisy18k import read_fsdnoisy18k
from beam_jobs.extract import extract
from beam_jobs.contracts.manifest import EXPLICIT_NEGATIVE, IMPLICIT_NEGATIVE, POSITIVE, DatasetError
from beam_jobs.ontology import Ontology, load_ontology, propagate_labels


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def tone(path, seconds=0.5, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")


@pytest.fixture
def fsdnoisy18k(tmp_path):
    write(tmp_path / "FSDnoisy18k.meta/train.csv",
          "fname,label,aso_id,manually_verified,noisy_small\n"
          "171479.wav,Rain,/m/06mb1,1,0\n"
          "52131.wav,Fire,/m/02_41,0,1\n"
          "1001.wav,Rain,/m/06mb1,0,0\n")
    write(tmp_path / "FSDnoisy18k.meta/test.csv", "fname,label,aso_id\n20.wav,Fire,/m/02_41\n")
    for name in ("171479", "52131", "1001"):
        tone(tmp_path / f"FSDnoisy18k.audio_train/{name}.wav")
    tone(tmp_path / "FSDnoisy18k.audio_test/20.wav")
    return tmp_path


def test_fsdnoisy18k(fsdnoisy18k):
    manifest = read_fsdnoisy18k(str(fsdnoisy18k))
    assert manifest.vocabulary == ("Fire", "Rain")
    first = manifest.rows[0]
    assert first.clip_id == "171479" and first.audio_path.endswith("FSDnoisy18k.audio_train/171479.wav")
    assert first.labels == ("Rain",) and first.flags == {"manually_verified": True, "noisy_small": False}
    assert [row.split for row in manifest.rows] == ["train", "train", "train", "test"]


def test_fsdnoisy18k_errors_name_file_and_row(fsdnoisy18k):
    train = fsdnoisy18k / "FSDnoisy18k.meta/train.csv"
    train.write_text(train.read_text().replace("52131.wav,Fire,/m/02_41,0,1", "52131.wav,Fire,/m/02_41,yes,1"))
    with pytest.raises(DatasetError, match=r"train\.csv:3: manually_verified must be 0 or 1"):
        read_fsdnoisy18k(str(fsdnoisy18k))
    train.write_text("fname,label,aso_id,manually_verified,noisy_small,extra\n")
    with pytest.raises(DatasetError, match=r"train\.csv:1: unknown columns \['extra'\]"):
        read_fsdnoisy18k(str(fsdnoisy18k))


def test_fsdkaggle2019_tolerates_post_competition_columns(tmp_path):
    meta = tmp_path / "FSDKaggle2019.meta"
    write(meta / "vocabulary.csv", "0,Bark\n1,Meow\n2,Purr\n")
    write(meta / "train_curated_post_competition.csv",
          'fname,labels,freesound_id,license\n0006ae4e.wav,"Bark,Meow",12345,CC-BY\n')
    write(meta / "train_noisy.csv", 'fname,labels\n00097e21.wav,Purr\n')
    write(meta / "test_post_competition.csv", 'fname,labels,usage,freesound_id,license\nab12.wav,Meow,Public,9,CC0\n')
    manifest = read_fsdkaggle2019(str(tmp_path))
    assert manifest.vocabulary == ("Bark", "Meow", "Purr")
    assert [(row.split, row.labels) for row in manifest.rows] == [
        ("train_curated", ("Bark", "Meow")), ("train_noisy", ("Purr",)), ("test", ("Meow",))]
    assert manifest.rows[1].audio_path.endswith("FSDKaggle2019.audio_train_noisy/00097e21.wav")
    write(meta / "train_noisy.csv", 'fname,labels\n00097e21.wav,Growl\n')
    with pytest.raises(DatasetError, match=r"train_noisy\.csv:2: labels not in the vocabulary: \['Growl'\]"):
        read_fsdkaggle2019(str(tmp_path))


AUDIOSET_HEADER = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n"


@pytest.fixture
def audioset(tmp_path):
    write(tmp_path / "class_labels_indices.csv",
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech"\n2,/m/04rlf,"Music"\n')
    write(tmp_path / "train_segments.csv", AUDIOSET_HEADER +
          '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"\n-0RWZT-miFs, 420.000, 430.000, "/m/04rlf"\n')
    write(tmp_path / "train_negatives.csv", AUDIOSET_HEADER + '-0RWZT-miFs, 420.000, 430.000, "/m/09x0r"\n')
    write(tmp_path / "eval_segments.csv", AUDIOSET_HEADER + 'abc, 0.000, 10.000, "/m/04rlf"\n')
    for split, ytid in (("train", "--PJHxphWEs"), ("train", "-0RWZT-miFs"), ("eval", "abc")):
        tone(tmp_path / "audio" / split / f"{ytid}.wav")
    return tmp_path


def test_audioset_label_states(audioset):
    manifest = read_audioset(str(audioset))
    assert manifest.vocabulary == ("Speech", "Male speech", "Music")
    rows = {row.clip_id: row for row in manifest.rows}
    assert rows["--PJHxphWEs"].labels == ("Speech", "Male speech")
    assert rows["-0RWZT-miFs"].label_states(manifest.vocabulary) == [EXPLICIT_NEGATIVE, IMPLICIT_NEGATIVE, POSITIVE]
    assert rows["abc"].split == "eval" and rows["abc"].audio_path.endswith("audio/eval/abc.wav")


def test_audioset_errors(audioset):
    write(audioset / "train_negatives.csv", AUDIOSET_HEADER + '-0RWZT-miFs, 420.000, 430.000, "/m/04rlf"\n')
    with pytest.raises(DatasetError, match=r"has \['Music'\] as positive and negative"):
        read_audioset(str(audioset))
    write(audioset / "train_segments.csv", AUDIOSET_HEADER + 'x, 0.0, 10.0, "/m/nope"\n')
    with pytest.raises(DatasetError, match=r"train_segments\.csv:4: labels not in class_labels_indices\.csv"):
        read_audioset(str(audioset))


def test_folder_of_class_folders(tmp_path):
    tone(tmp_path / "dog" / "a.wav")
    tone(tmp_path / "dog" / "b.flac")
    tone(tmp_path / "cat" / "c.wav")
    write(tmp_path / "cat" / "notes.txt", "not audio")
    manifest = read_folder(str(tmp_path))
    assert manifest.vocabulary == ("cat", "dog")
    assert sorted(row.clip_id for row in manifest.rows) == ["train/cat/c", "train/dog/a", "train/dog/b"]
    assert [entry["path"] for entry in manifest.source["ignored"]] == ["cat/notes.txt"]
    assert manifest.source["ignored"][0]["reason"].startswith("not an audio file")


def test_folder_with_split_folders(tmp_path):
    tone(tmp_path / "train" / "dog" / "a.wav")
    tone(tmp_path / "eval" / "dog" / "b.wav")
    assert sorted(row.split for row in read_folder(str(tmp_path)).rows) == ["eval", "train"]
    with pytest.raises(DatasetError, match="no audio files"):
        read_folder(str(tmp_path / "nothing"))


@pytest.mark.parametrize("fixture,dataset_format", [("fsdnoisy18k", "fsdnoisy18k"), ("audioset", "audioset")])
def test_the_feature_job_accepts_every_format(fixture, dataset_format, request, tmp_path):
    root = request.getfixturevalue(fixture)
    ingest.ingest(str(root), str(tmp_path / "manifest"), dataset_format)
    counts = extract(str(tmp_path / "manifest"), str(tmp_path / "features"))
    assert sum(split["written"] for split in counts.values()) == sum(split["read"] for split in counts.values()) > 0


ONTOLOGY = [
    {"id": "/m/animal", "name": "Animal", "child_ids": ["/m/pets"]},
    {"id": "/m/pets", "name": "Domestic animals", "child_ids": ["/m/dog", "/m/cat"]},
    {"id": "/m/dog", "name": "Dog", "child_ids": []},
    {"id": "/m/cat", "name": "Cat", "child_ids": []},
]


def test_ontology_propagation_is_restricted_to_the_vocabulary(tmp_path):
    ontology = Ontology(ONTOLOGY)
    assert ontology.ancestors("/m/dog") == {"/m/pets", "/m/animal"}
    vocabulary = {"Dog": "/m/dog", "Cat": "/m/cat", "Animal": "/m/animal"}  # "Domestic animals" not in it
    assert propagate_labels(("Dog",), vocabulary, ontology) == ("Dog", "Animal")
    assert propagate_labels(("Animal",), vocabulary, ontology) == ("Animal",)
    write(tmp_path / "ontology.json", json.dumps(ONTOLOGY))
    assert load_ontology(str(tmp_path / "ontology.json")).ancestors("/m/cat") == {"/m/pets", "/m/animal"}


def test_ontology_cycles_and_unknown_children_are_errors(tmp_path):
    cyclic = [dict(entry) for entry in ONTOLOGY]
    cyclic[2] = {"id": "/m/dog", "name": "Dog", "child_ids": ["/m/animal"]}
    write(tmp_path / "ontology.json", json.dumps(cyclic))
    with pytest.raises(DatasetError, match=r"ontology\.json: cycle in the ontology: .*/m/animal"):
        load_ontology(str(tmp_path / "ontology.json"))
    with pytest.raises(DatasetError, match="unknown child ids"):
        Ontology([{"id": "/m/a", "child_ids": ["/m/b"]}])


def test_ingest_propagates_unpropagated_labels(audioset, tmp_path):
    ontology = [{"id": "/m/09x0r", "name": "Speech", "child_ids": ["/m/05zppz"]},
                {"id": "/m/05zppz", "name": "Male speech", "child_ids": []},
                {"id": "/m/04rlf", "name": "Music", "child_ids": []}]
    write(tmp_path / "ontology.json", json.dumps(ontology))
    write(audioset / "train_segments.csv", AUDIOSET_HEADER + '--PJHxphWEs, 30.0, 40.0, "/m/05zppz"\n'
          '-0RWZT-miFs, 420.000, 430.000, "/m/04rlf"\n')
    manifest = ingest.ingest(str(audioset), str(tmp_path / "manifest"), "audioset", str(tmp_path / "ontology.json"))
    rows = {row.clip_id: row for row in manifest.rows}
    assert rows["--PJHxphWEs"].labels == ("Speech", "Male speech")
    tone(tmp_path / "folder" / "dog" / "a.wav")
    with pytest.raises(DatasetError, match="no ontology ids"):
        ingest.ingest(str(tmp_path / "folder"), str(tmp_path / "m2"), "folder", str(tmp_path / "ontology.json"))


def test_audioset_as_released_and_as_downloaded(tmp_path):
    """AudioSet's own files (comment lines, quoted mid lists, a display name with a comma) and the audio
    names that downloaders write (Y<YTID>.wav by the PANNs scripts, <YTID>_<start>.wav)."""
    write(tmp_path / "class_labels_indices.csv",
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n2,/m/0jbk,"Animal"\n')
    header = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
              "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
              "# YTID, start_seconds, end_seconds, positive_labels\n")
    write(tmp_path / "balanced_train_segments.csv", header + '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"\n'
          '--ZhevVpy1s, 50.000, 60.000, "/m/0jbk"\n--aE2O5G5WE, 0.000, 10.000, "/m/09x0r"\n')
    write(tmp_path / "unbalanced_train_segments.csv", header + '-0RWZT-miFs, 420.000, 430.000, "/m/0jbk"\n')
    write(tmp_path / "eval_segments.csv", header + '--4gqARaEJE, 0.000, 10.000, "/m/0jbk"\n')
    tone(tmp_path / "audio" / "balanced_train" / "Y--PJHxphWEs.wav")
    tone(tmp_path / "audio" / "balanced_train" / "--ZhevVpy1s_50.000.wav")  # --aE2O5G5WE: deleted video
    tone(tmp_path / "audio" / "unbalanced_train" / "-0RWZT-miFs_420.wav")
    tone(tmp_path / "audio" / "eval" / "--4gqARaEJE.flac")
    manifest = read_audioset(str(tmp_path))
    assert manifest.vocabulary == ("Speech", "Male speech, man speaking", "Animal")
    by_id = {row.clip_id: row for row in manifest.rows}
    assert set(by_id) == {"--PJHxphWEs", "--ZhevVpy1s", "--4gqARaEJE"}
    assert {row.split for row in manifest.rows} == {"train", "eval"}
    assert by_id["--PJHxphWEs"].labels == ("Speech", "Male speech, man speaking")
    assert by_id["--PJHxphWEs"].audio_path.endswith("Y--PJHxphWEs.wav")
    assert manifest.source["missing_audio"] == {"balanced_train": {"clips": 1, "examples": ["--aE2O5G5WE"]}}
    ignored = [entry["path"].rsplit("/", 1)[-1] for entry in manifest.source["ignored"]]
    assert ignored == ["unbalanced_train_segments.csv", "unbalanced_train"]  # its list and its audio
    both = read_audioset(str(tmp_path), train_subsets="both")
    assert {row.clip_id for row in both.rows if row.split == "train"} == {"--PJHxphWEs", "--ZhevVpy1s", "-0RWZT-miFs"}
    write(tmp_path / "class_labels_indices.csv",  # a subset of the 527 classes keeps AudioSet's indices
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n72,/m/0jbk,"Animal"\n')
    assert read_audioset(str(tmp_path)).vocabulary == manifest.vocabulary
    write(tmp_path / "class_labels_indices.csv",
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n72,/m/05zppz,"Male speech, man speaking"\n1,/m/0jbk,"Animal"\n')
    with pytest.raises(DatasetError, match=r"class_labels_indices\.csv:4: index '1' is not an integer above .* 72"):
        read_audioset(str(tmp_path))
    for path in (tmp_path / "audio").rglob("*.*"):
        path.unlink()
    write(tmp_path / "class_labels_indices.csv",
          'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n2,/m/0jbk,"Animal"\n')
    with pytest.raises(DatasetError, match="none of the 4 listed clips has an audio file"):
        read_audioset(str(tmp_path))


def test_fsdkaggle2019_as_the_competition_distributed_it(tmp_path):
    write(tmp_path / "train_curated.csv",
          'fname,labels\n0006ae4e.wav,Bark\n0019ef41.wav,"Raindrop,Trickle_and_dribble"\n')
    write(tmp_path / "train_noisy.csv", "fname,labels\n00097e21.wav,Bathtub_(filling_or_washing)\n")
    write(tmp_path / "sample_submission.csv",
          "fname,Bark,Bathtub_(filling_or_washing),Raindrop,Trickle_and_dribble\n4260ebea.wav,0,0,0,0\n")
    tone(tmp_path / "train_curated" / "0006ae4e.wav")
    tone(tmp_path / "train_curated" / "0019ef41.wav")
    tone(tmp_path / "train_noisy" / "00097e21.wav")
    tone(tmp_path / "test" / "4260ebea.wav")
    manifest = read_fsdkaggle2019(str(tmp_path))
    assert manifest.vocabulary == ("Bark", "Bathtub_(filling_or_washing)", "Raindrop", "Trickle_and_dribble")
    assert sorted(row.clip_id for row in manifest.rows) == ["train_curated/0006ae4e", "train_curated/0019ef41",
                                                             "train_noisy/00097e21"]
    assert all(os.path.exists(row.audio_path) for row in manifest.rows)
    assert "withheld the test labels" in manifest.source["ignored"][0]["reason"]
    with pytest.raises(DatasetError, match="neither the released layout"):
        read_fsdkaggle2019(str(tmp_path / "train_noisy"))


def test_fsdkaggle2018_released_and_as_the_competition_distributed_it(tmp_path):
    from replicas import fsdkaggle2018

    root = fsdkaggle2018(tmp_path / "released")
    manifest = read_fsdkaggle2018(str(root))
    assert manifest.vocabulary == ("Burping_or_eructation", "Drawer_open_or_close", "Hi-hat", "Saxophone",
                                   "Violin_or_fiddle")
    train = [row for row in manifest.rows if row.split == "train"]
    assert len(train) == 30 and sum(row.flags["manually_verified"] for row in train) == 12
    assert sum(row.split == "test" for row in manifest.rows) == 12
    assert all(os.path.exists(row.audio_path) for row in manifest.rows)
    padding = manifest.source["ignored"][0]
    assert padding["path"].endswith("FSDKaggle2018.audio_test") and padding["files"] == 3
    competition = tmp_path / "competition"
    write(competition / "train.csv", "fname,label,manually_verified\n00044347.wav,Hi-hat,0\n001ca53d.wav,Saxophone,1\n")
    write(competition / "sample_submission.csv", "fname,label\n00063640.wav,Laughter Hi-hat Flute\n")
    tone(competition / "audio_train" / "00044347.wav")
    tone(competition / "audio_train" / "001ca53d.wav")
    tone(competition / "audio_test" / "00063640.wav")
    manifest = read_fsdkaggle2018(str(competition))
    assert [(row.clip_id, row.flags["manually_verified"]) for row in manifest.rows] == [
        ("train/00044347", False), ("train/001ca53d", True)]
    assert "withheld the test labels" in manifest.source["ignored"][0]["reason"]
    write(competition / "train.csv", "fname,label,manually_verified\n00044347.wav,Hi-hat,yes\n")
    with pytest.raises(DatasetError, match=r"train.csv:2: manually_verified must be 0 or 1"):
        read_fsdkaggle2018(str(competition))


def test_folder_split_names_as_people_write_them(tmp_path):
    tone(tmp_path / "Training" / "dog" / "a.wav")
    tone(tmp_path / "validation" / "dog" / "b.wav")
    tone(tmp_path / "test" / "cat" / "c.wav")
    tone(tmp_path / "train" / "cat" / "d.wav")
    (tmp_path / "__MACOSX" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "train" / "cat" / "._d.wav").write_bytes(b"\0\5\26\7")
    manifest = read_folder(str(tmp_path))
    assert {row.clip_id: row.split for row in manifest.rows} == {
        "train/dog/a": "train", "val/dog/b": "val", "test/cat/c": "test", "train/cat/d": "train"}
    assert [entry["reason"] for entry in manifest.source["ignored"]] == ["operating-system metadata"]


def test_an_experiment_says_what_the_dataset_lacks(tmp_path):
    tone(tmp_path / "dog" / "a.wav")
    tone(tmp_path / "cat" / "b.wav")
    manifest = read_folder(str(tmp_path))
    with pytest.raises(DatasetError, match=r"needs the splits \['train', 'val', 'eval'\].*\['val', 'eval'\] missing "
                                           r"\(a folder dataset's split folders, <root>/<split>/<class>/<clip>, are used "
                                           r"as they are; without split folders, ingest makes"):
        ingest.check_requirements(manifest, ["train", "val", "eval"], [])
    with pytest.raises(DatasetError, match=r"2 sources \(grouped by clip\) cannot make the splits \['train', 'eval', "
                                           r"'val'\]"):
        ingest.ingest(str(tmp_path), str(tmp_path / "manifest"), "folder", needed_splits=("train", "val", "eval"))
    tone(tmp_path / "dog" / "c.wav")
    made = ingest.ingest(str(tmp_path), str(tmp_path / "manifest"), "folder", needed_splits=("train", "val", "eval"))
    ingest.check_requirements(made, ["train", "val", "eval"], [])  # what a pipeline's ingest task does
    with pytest.raises(DatasetError, match=r"needs the per-clip flags \['manually_verified'\] on the train clips"):
        ingest.check_requirements(manifest, ["train"], ["manually_verified"])
    ingest.check_requirements(manifest, ["train"], [])


@pytest.mark.parametrize("dataset_format, audio_folder", [
    ("fsd50k", "FSD50K.dev_audio"), ("fsdnoisy18k", "FSDnoisy18k.audio_test"),
    ("fsdkaggle2019", "FSDKaggle2019.audio_train_noisy"), ("fsdkaggle2018", "FSDKaggle2018.audio_train"),
    ("audioset", "audio/eval")])
def test_audio_files_the_metadata_does_not_list_are_accounted_for(dataset_format, audio_folder, tmp_path):
    from replicas import REPLICAS

    root = REPLICAS[dataset_format](tmp_path / "dataset")
    tone(root / audio_folder / "stray.wav")
    (root / audio_folder / ".DS_Store").write_bytes(b"\0")
    manifest = ingest.ingest(str(root), str(tmp_path / "manifest"), dataset_format)
    entry = next(entry for entry in manifest.source["ignored"] if entry["path"].endswith(audio_folder))
    assert entry["files"] == 2 and [path.rsplit("/", 1)[-1] for path in entry["examples"]] == [".DS_Store", "stray.wav"]
    assert json.loads((tmp_path / "manifest" / "source.json").read_text())["ignored"] == manifest.source["ignored"]


def test_ingest_fails_on_metadata_without_audio_and_reports_missing_clips(tmp_path):
    from replicas import fsd50k

    root = fsd50k(tmp_path / "FSD50K")
    missing = sorted((root / "FSD50K.dev_audio").glob("*.wav"))[0]
    missing.unlink()
    manifest = ingest.ingest(str(root), str(tmp_path / "manifest"), "fsd50k")
    assert missing.stem not in {row.clip_id for row in manifest.rows} and len(manifest.rows) == 24 + 12 + 16 - 1
    source = json.loads((tmp_path / "manifest" / "source.json").read_text())
    split = next(split for split, entry in source["missing_audio"].items())
    assert source["missing_audio"] == {split: {"clips": 1, "examples": [missing.stem]}}
    for folder in ("FSD50K.dev_audio", "FSD50K.eval_audio"):  # the metadata alone, as downloaded first
        for path in (root / folder).glob("*.wav"):
            path.unlink()
    with pytest.raises(DatasetError, match="none of the 52 listed clips has its audio file"):
        ingest.ingest(str(root), str(tmp_path / "manifest2"), "fsd50k")
