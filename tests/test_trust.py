"""A result is right or the run fails loudly: bad audio never reaches a shard, runs never mix, every file
is accounted for, and a killed job rerun gives what a clean run gives."""
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import soundfile

from beam_jobs import ingest
from beam_jobs.contracts import feature_set, features
from beam_jobs.contracts.manifest import DatasetError, read_manifest
from beam_jobs.contracts.publish import MARKER_FILE, IncompleteOutputError, check_complete
from beam_jobs.extract import extract
from keras_models import metrics
from keras_models.guards import FiniteGuard, NonFiniteTraining

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 22050


def tone(path, seconds=1.0, rate=RATE, amplitude=0.5, subtype="PCM_16"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype=subtype)
    return path


def dead_letters(features_dir):
    with open(os.path.join(features_dir, feature_set.DEAD_LETTERS_FILE)) as handle:
        return {json.loads(line)["clip_id"]: json.loads(line)["reason"] for line in handle}


# ---------------------------------------------------------------- silent corruption ----

def test_broken_audio_is_rejected_with_its_reason_and_silence_is_counted(tmp_path):
    root = tmp_path / "data"
    tone(str(root / "ok" / "good.wav"))
    tone(str(root / "ok" / "float_loud.wav"), amplitude=2.0, subtype="FLOAT")  # a little over full scale: kept
    tone(str(root / "ok" / "huge.wav"), amplitude=1e20, subtype="FLOAT")
    tone(str(root / "ok" / "large.wav"), amplitude=1e18, subtype="FLOAT")
    tone(str(root / "ok" / "one_sample.wav"), seconds=1 / RATE)
    tone(str(root / "ok" / "ms8.wav"), seconds=0.008)
    tone(str(root / "ok" / "ms12.wav"), seconds=0.012)
    tone(str(root / "ok" / "silence.wav"), amplitude=0.0)
    tone(str(root / "ok" / "truncated.wav"), seconds=2.0)
    with open(root / "ok" / "truncated.wav", "r+b") as handle:
        handle.truncate(44 + RATE * 2)  # the header still says 2 s of 16-bit samples; 1 s is left
    ingest.ingest(str(root), str(tmp_path / "manifest"), "folder")
    counts = extract(str(tmp_path / "manifest"), str(tmp_path / "features"))
    letters = dead_letters(str(tmp_path / "features"))
    assert "samples out of range" in letters["train/ok/huge"] and "peak 1e+20" in letters["train/ok/huge"]
    assert "samples out of range" in letters["train/ok/large"]
    assert "truncated WAV" in letters["train/ok/truncated"] and "declares 88200 bytes" in letters["train/ok/truncated"]
    assert "too short" in letters["train/ok/one_sample"] and "under the 10 ms minimum" in letters["train/ok/ms8"]
    assert set(letters) == {"train/ok/huge", "train/ok/large", "train/ok/truncated", "train/ok/one_sample",
                            "train/ok/ms8"}
    assert counts["train"] == {"read": 9, "written": 4, "rejected": 5, "silent": 1, "patches": 4}
    stats = json.loads((tmp_path / "features" / feature_set.STATS_FILE).read_text())
    assert np.all(np.isfinite(stats["train"]["mean"])) and np.all(np.isfinite(stats["train"]["std"]))


def test_a_non_finite_log_mel_is_a_clip_error():
    with pytest.raises(features.ClipError, match="non-finite log-mel for x.wav: 2 of 6 values"):
        features.check_finite(np.array([[0.0, np.nan, 1.0], [np.inf, 2.0, 3.0]]), "x.wav")


@pytest.mark.parametrize("metric", [
    lambda truth, scores: metrics.average_precision(truth, scores),
    lambda truth, scores: metrics.clip_metrics(truth, scores),
    lambda truth, scores: metrics.roc_auc(truth, scores),
    lambda truth, scores: metrics.lwlrap(truth, scores),
    lambda truth, scores: metrics.accuracy(truth, scores),
    lambda truth, scores: metrics.single_label_metrics(truth, scores),
], ids=["AP", "mAP_and_d_prime", "AUC", "lwlrap", "accuracy", "balanced_accuracy"])
def test_metrics_refuse_non_finite_scores(metric):
    truth = np.eye(3)[[0, 1, 2, 0]]
    scores = np.full((4, 3), 0.2)
    scores[2, 1] = np.nan
    with pytest.raises(metrics.NonFiniteScores, match="1 non-finite scores in 1 of 4 clips"):
        metric(truth, scores)
    scores[2, 1] = 0.3
    metric(truth, scores)  # finite scores still give a number


def test_training_stops_naming_the_epoch_when_the_loss_becomes_non_finite():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    y = np.ones((8, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[FiniteGuard()])  # finite: trains
    x[5] = np.nan
    with pytest.raises(NonFiniteTraining, match=r"epoch 2, batch 2: the training loss is nan"):
        model.fit(x, y, epochs=2, initial_epoch=1, batch_size=4, verbose=0, shuffle=False, callbacks=[FiniteGuard()])


def test_training_stops_when_a_weight_becomes_non_finite():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")

    class Corrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.layers[0].kernel.assign(np.full((2, 1), np.inf, np.float32))

    with pytest.raises(NonFiniteTraining, match=r"epoch 1: non-finite weights \['sequential.*kernel'\]"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[Corrupt(), FiniteGuard()])


# ---------------------------------------------------------------- outputs that mix runs ----

def records(features_dir, split):
    import tensorflow as tf

    return sorted(hashlib.sha256(record.numpy()).hexdigest()
                  for record in tf.data.TFRecordDataset(
                      sorted(glob.glob(feature_set.shard_pattern(features_dir, split)))))


def test_rerunning_into_a_folder_replaces_it_whole(manifest_dir, tmp_path):
    output = str(tmp_path / "features")
    extract(manifest_dir, output, num_shards=3)
    first_train = records(output, "train")
    small = tmp_path / "small"
    rows = read_manifest(manifest_dir)
    from beam_jobs.contracts.manifest import write_manifest

    write_manifest(str(small), rows.__class__(rows=rows.rows[:20], vocabulary=rows.vocabulary, source=rows.source))
    counts = extract(str(small), output, num_shards=1)
    written = sum(len(records(output, split)) for split in counts)
    assert written == sum(split["patches"] for split in counts.values()) < len(first_train)
    assert len(glob.glob(os.path.join(output, "*.tfrecord"))) == len(counts)  # the 3-shard run's files are gone
    assert not glob.glob(os.path.join(output, "*beam-temp*")) and not os.path.exists(os.path.join(output, ".staging"))


def test_readers_refuse_a_folder_that_is_not_a_complete_published_output(features_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(features_dir, copy)
    feature_set.load_feature_set(str(copy))
    (copy / "train-99999-of-99999.tfrecord").write_bytes(b"from another run")
    with pytest.raises(IncompleteOutputError, match="files the run did not write.*train-99999"):
        feature_set.load_feature_set(str(copy))
    os.remove(copy / "train-99999-of-99999.tfrecord")
    with open(copy / feature_set.STATS_FILE, "a") as handle:
        handle.write(" ")
    with pytest.raises(IncompleteOutputError, match="of another size than written.*stats.json"):
        feature_set.read_counts(str(copy))
    os.remove(copy / MARKER_FILE)
    with pytest.raises(IncompleteOutputError, match="no _COMPLETE.json.*rerun it into this folder"):
        feature_set.load_feature_set(str(copy))


def test_a_failed_run_leaves_nothing_half_written_and_an_unknown_folder_is_not_replaced(manifest_dir, tmp_path):
    output = tmp_path / "features"
    with pytest.raises(ValueError, match="no split"):
        extract(manifest_dir, str(output), splits=("nope",))
    assert not output.exists()
    foreign = tmp_path / "someone_elses"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_text("precious")
    with pytest.raises(IncompleteOutputError, match="holds files that no run of this project published"):
        extract(manifest_dir, str(foreign))
    assert (foreign / "thesis.pdf").read_text() == "precious"


# ---------------------------------------------------------------- nothing lost ----

def test_every_file_under_a_folder_dataset_is_accounted_for_exactly_once(tmp_path):
    root = tmp_path / "data"
    for name in ("dog/a.wav", "dog/b.wav", "cat/c.wav", "cat/d.flac"):
        tone(str(root / name))
    (root / "cat" / "notes.txt").write_text("not audio")
    tone(str(root / "dog" / "puppies" / "deep.wav"))  # nested one level too deep
    tone(str(root / "dog" / "foo.wav" / "inside.wav"))  # a folder named like a clip
    os.symlink(root / "nowhere.wav", root / "cat" / "dangling.wav")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._a.wav").write_bytes(b"\0" * 10)
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    manifest = ingest.ingest(str(root), str(tmp_path / "manifest"), "folder")
    extract(str(tmp_path / "manifest"), str(tmp_path / "features"))
    letters = dead_letters(str(tmp_path / "features"))
    in_manifest = {os.path.relpath(row.audio_path, root) for row in manifest.rows}
    ignored = {entry["path"]: entry["reason"] for entry in manifest.source["ignored"]}
    everything = {os.path.relpath(os.path.join(folder, name), root)
                  for folder, folders, files in os.walk(root) for name in files}
    assert everything <= in_manifest | set(ignored) and not in_manifest & set(ignored)
    assert "nested deeper" in ignored["dog/puppies/deep.wav"] and "nested deeper" in ignored["dog/foo.wav/inside.wav"]
    assert ignored["__MACOSX/._a.wav"] == ignored["dog/.DS_Store"] == "operating-system metadata"
    assert "a directory, not an audio file" in letters["train/dog/foo"]
    assert "symbolic link" in letters["train/cat/dangling"] and "does not exist" in letters["train/cat/dangling"]
    assert all(os.path.isabs(row.audio_path) for row in manifest.rows)


def test_a_relative_root_is_stored_absolute_and_an_all_rejected_split_fails_the_job(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("train/dog/a.wav", "train/cat/b.wav", "eval/dog/c.wav"):
        tone(str(root / name))
    (root / "eval" / "cat").mkdir(parents=True)
    (root / "eval" / "cat" / "d.wav").write_bytes(b"RIFF garbage")
    monkeypatch.chdir(tmp_path)
    ingest.ingest("data", "manifest", "folder")
    monkeypatch.chdir(REPOSITORY)  # the job runs from elsewhere
    assert extract(str(tmp_path / "manifest"), str(tmp_path / "ok"), splits=("train",))["train"]["written"] == 2
    os.remove(root / "eval" / "dog" / "c.wav")
    with pytest.raises(RuntimeError, match=r"every clip of split\(s\) \['eval'\] was rejected, e.g. .*cannot"):
        extract(str(tmp_path / "manifest"), str(tmp_path / "features"))
    assert not (tmp_path / "features" / MARKER_FILE).exists()


# ---------------------------------------------------------------- messages ----

def test_dataset_messages_say_what_is_wrong(synthetic_root, tmp_path):
    with pytest.raises(DatasetError, match="the dataset root is not a folder"):
        ingest.ingest(str(tmp_path / "missing"), str(tmp_path / "m1"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="the dataset root is not a folder"):
        ingest.ingest(str(tmp_path / "file"), str(tmp_path / "m2"))
    copy = tmp_path / "bom"
    shutil.copytree(synthetic_root, copy)
    dev = copy / "FSD50K.ground_truth" / "dev.csv"
    lines = dev.read_text().splitlines()
    dev.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")  # saved on Windows
    assert len(ingest.ingest(str(copy), str(tmp_path / "m3")).rows) > 0
    dev.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(DatasetError, match=rf"listed twice: at .*dev.csv:2 and at .*dev.csv:{len(lines) + 1}"):
        ingest.ingest(str(copy), str(tmp_path / "m4"))


# ---------------------------------------------------------------- killed and rerun ----

def folder_digest(folder):
    """What a run's output means, independent of how the runner named and filled its shards."""
    marker = check_complete(folder, "a job's output")
    digest = {}
    for name in marker["files"]:
        path = os.path.join(folder, name)
        if name.endswith(".tfrecord"):
            digest.setdefault("records:" + name.split("-")[0], []).extend(records_of_file(path))
        elif name.endswith((".csv", ".jsonl")):
            with open(path) as handle:
                lines = handle.read().splitlines()
            digest.setdefault("lines:" + name.split("-")[0], []).extend(lines[1:] if name.endswith(".csv") else lines)
        else:
            with open(path) as handle:
                digest[name] = rounded(json.load(handle))
    for value in digest.values():
        if isinstance(value, list):
            value.sort()
    return {key: value for key, value in digest.items() if key not in ("scoring.json", "source.json")}


def rounded(value):
    """JSON with floats to 7 significant digits: sums over bundles may be added in another order."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def records_of_file(path):
    import tensorflow as tf

    return [hashlib.sha256(record.numpy()).hexdigest() for record in tf.data.TFRecordDataset([path])]


def run_job(module, args, kill_after=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPOSITORY}
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPOSITORY, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        return
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


@pytest.fixture(scope="module")
def scored(features_dir, tmp_path_factory):
    """A 1-epoch model on the small feature set and its train-split score table."""
    from beam_jobs.scoring import score_clips
    from keras_models.train import TrainParams, train_classifier

    base = tmp_path_factory.mktemp("scored")
    model_dir = str(base / "model")
    train_classifier(features_dir, model_dir, TrainParams(width=0.125, epochs=1, batch_size=16))
    score_clips(model_dir, features_dir, str(base / "scores"))
    return model_dir, str(base / "scores")


@pytest.fixture(scope="module")
def separator_dir(manifest_dir, tmp_path_factory):
    from keras_models import separation

    directory = str(tmp_path_factory.mktemp("separator"))
    params = separation.SeparatorParams(channels=2, hidden=16, blocks=1, steps=2, checkpoint_steps=(2,),
                                        batch_size=2, segment_seconds=0.5)
    separation.train_separator(separation.ManifestWaveforms(manifest_dir, "train", params.sample_rate), directory,
                               params, log_every=2)
    return directory


JOBS = {
    "ingest": ("beam_jobs.ingest", lambda d, out: ["--dataset_root", d["root"], "--manifest_dir", out]),
    "extract": ("beam_jobs.extract", lambda d, out: ["--manifest_dir", d["manifest"], "--output_dir", out]),
    "separate": ("beam_jobs.separate", lambda d, out: ["--manifest_dir", d["manifest"], "--output_dir", out,
                                                       "--separator_dir", d["separator"], "--steps", "2"]),
    "scoring": ("beam_jobs.scoring", lambda d, out: ["--model_dir", d["model"], "--features_dir", d["features"],
                                                     "--output_dir", out]),
    "relabel": ("beam_jobs.relabel", lambda d, out: ["--features_dir", d["features"], "--manifest_dir", d["manifest"],
                                                     "--scores_dir", d["scores"], "--tc_percent", "10",
                                                     "--output_dir", out]),
    "prune": ("beam_jobs.prune", lambda d, out: ["--features_dir", d["features"], "--scores_dir", d["scores"],
                                                 "--output_dir", out, "--percentile", "90"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_job_killed_at_any_point_then_rerun_gives_the_clean_runs_output(job, synthetic_root, manifest_dir,
                                                                        features_dir, scored, separator_dir, tmp_path):
    module, arguments = JOBS[job]
    inputs = {"root": synthetic_root, "manifest": manifest_dir, "features": features_dir, "model": scored[0],
              "scores": scored[1], "separator": separator_dir}
    clean = str(tmp_path / "clean")
    started = time.time()
    run_job(module, arguments(inputs, clean))
    duration = time.time() - started
    expected = folder_digest(clean)
    interrupted = 0
    for point in (0.3, 0.6, 0.9):  # over the job: start-up, the Beam pipeline, publication
        killed = str(tmp_path / f"killed_{point}")
        run_job(module, arguments(inputs, clean if point == 0.9 else killed), kill_after=point * duration)
        target = clean if point == 0.9 else killed  # the last kill lands on top of a complete folder
        try:
            complete = folder_digest(target) == expected
        except IncompleteOutputError:
            complete = False
        if not complete:
            interrupted += 1
            with pytest.raises(IncompleteOutputError):
                check_complete(target, "a killed run")
        run_job(module, arguments(inputs, target))
        assert folder_digest(target) == expected, (job, point)
        assert not glob.glob(os.path.join(target, "**", "*beam-temp*"), recursive=True)
        assert not os.path.exists(os.path.join(target, ".staging"))
    assert interrupted, "no kill landed before the job had finished"


# ---------------------------------------------------------------- long clips ----

def test_long_clips_are_transformed_in_blocks_to_the_same_log_mel(tmp_path, monkeypatch):
    from beam_jobs.contracts.params import FeatureParams

    params = FeatureParams()
    rng = np.random.default_rng(3)
    path = str(tmp_path / "long.wav")
    soundfile.write(path, (0.1 * rng.standard_normal((44100 * 7, 2))).astype(np.float32), 44100, subtype="PCM_16")
    whole, whole_silent = features.clip_log_mel(path, params)
    monkeypatch.setattr(features, "LONG_CLIP_SECONDS", 1.0)
    monkeypatch.setattr(features, "BLOCK_SECONDS", 0.37)  # blocks that end anywhere within a frame
    streamed, streamed_silent = features.clip_log_mel(path, params)
    assert streamed.shape == whole.shape == (params.num_frames(22050 * 7), params.n_mels)
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    assert not streamed_silent and not whole_silent
    soundfile.write(path, np.zeros(22050 * 3, np.float32), 22050, subtype="PCM_16")
    assert features.clip_log_mel(path, params)[1]  # silence, streamed at the feature rate


def test_a_report_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from beam_jobs.contracts import storage

    path = tmp_path / "stats.json"
    storage.write_text(str(path), '{"complete": true}')

    def disk_full(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        storage.write_text(str(path), '{"complete": tr')
    assert path.read_text() == '{"complete": true}'
    assert os.listdir(tmp_path) == ["stats.json"]  # no temporary file left
