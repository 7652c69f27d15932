"""The model folder's Keras side: saving and loading the networks, the history callback, and the mirror that
lets a retried pod resume a training. Its file names and TensorFlow-free readers are the contract's
(beam_jobs.contracts.model_folder)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil

import keras
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.model_folder import (ENCODER_DESCRIPTION_FILE, ENCODER_FILE, HISTORY_FILE, MODEL_FILE, path,
                                              read_history, write_text)


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs to history.json, so that a resumed run keeps the earlier epochs."""

    def __init__(self, model_dir: str):
        super().__init__()
        self.model_dir = model_dir

    def on_epoch_end(self, epoch, logs=None):
        history = [entry for entry in read_history(self.model_dir) if entry["epoch"] < epoch + 1]
        history.append({"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}})
        write_text(self.model_dir, HISTORY_FILE, json.dumps(history, indent=1))


RESUME_SUFFIX = ".resume"
RAW = CompressionTypes.UNCOMPRESSED  # copies byte for byte, whatever the file's suffix


class FolderMirror(keras.callbacks.Callback):
    """After every epoch (and so after BackupAndRestore's checkpoint, when it is the last callback), copies
    the local model folder's new and changed files to `remote_dir` and deletes there what is gone here."""

    def __init__(self, local_dir: str, remote_dir: str):
        super().__init__()
        self.local_dir, self.remote_dir = local_dir, remote_dir.rstrip("/")
        self.copied: dict[str, tuple[int, int]] = {}

    def _local_files(self) -> dict[str, tuple[int, int]]:
        found = {}
        for folder, _, names in os.walk(self.local_dir):
            for name in names:
                local = os.path.join(folder, name)
                status = os.stat(local)
                found[os.path.relpath(local, self.local_dir)] = (status.st_size, status.st_mtime_ns)
        return found

    def sync(self) -> None:
        files = self._local_files()
        for name, stamp in sorted(files.items()):
            if self.copied.get(name) != stamp:
                with open(os.path.join(self.local_dir, name), "rb") as source, \
                        FileSystems.create(f"{self.remote_dir}/{name}", compression_type=RAW) as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        gone = [f"{self.remote_dir}/{name}" for name in set(self.copied) - set(files)]
        if gone:
            FileSystems.delete(gone)
        self.copied = files

    def remote_files(self) -> list[str]:
        return [match.path for match in FileSystems.match([f"{self.remote_dir}/**"])[0].metadata_list]

    def restore(self) -> int:
        """Copies the remote folder's files into the (empty) local folder; how many there were."""
        remote_files = self.remote_files()
        for remote_file in remote_files:
            local = os.path.join(self.local_dir, remote_file[len(self.remote_dir) + 1:])
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with FileSystems.open(remote_file, compression_type=RAW) as source, open(local, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        self.copied = self._local_files()
        return len(remote_files)

    def on_epoch_end(self, epoch, logs=None):
        self.sync()


def resume_location(artifact_path: str, artifact_uri: str) -> str | None:
    """Where a training whose output artifact is at `artifact_uri` (and, inside the pod, at the local
    `artifact_path`) keeps its checkpoints between attempts: beside the artifact's remote URI, which a
    retried pod (given the same executor input) finds again. None when the URI is the local path itself
    (kfp.local, or a mount) or on a store no Beam filesystem here can write (said in the log)."""
    if FileSystems.get_scheme(artifact_uri) is None or artifact_uri.rstrip("/") == artifact_path.rstrip("/"):
        return None
    try:
        FileSystems.get_filesystem(artifact_uri)
    except ValueError:
        print(f"{artifact_uri}: no filesystem here writes this scheme, so checkpoints stay in the pod and a retried "
              f"task trains from epoch 1 (give the pipeline a gs:// or s3:// pipeline root to resume)", flush=True)
        return None
    return artifact_uri.rstrip("/") + RESUME_SUFFIX


@contextlib.contextmanager
def resumable(artifact_path: str, artifact_uri: str):
    """Around a training that writes its model folder at `artifact_path`: first restores the checkpoints an
    earlier attempt left at `resume_location`, then yields the callbacks that keep them there after every
    epoch (none when there is nowhere to keep them); once the block succeeds they are deleted."""
    remote = resume_location(artifact_path, artifact_uri)
    if remote is None:
        yield ()
        return
    mirror = FolderMirror(artifact_path, remote)
    restored = mirror.restore()
    print(f"{remote}: " + (f"resuming from the {restored} files an earlier attempt left" if restored else
                           "checkpoints go here after every epoch, so a retried task resumes"), flush=True)
    yield (mirror,)
    finished = mirror.remote_files()
    if finished:
        FileSystems.delete(finished)


def _register_custom_objects() -> None:
    from keras_models import losses  # noqa: F401  (registers the custom layers and loss for deserialisation)
    from keras_models.layers import pooling  # noqa: F401


def load_model(model_dir: str) -> keras.Model:
    """A model folder's classifier, with the project's custom layers registered."""
    _register_custom_objects()
    return keras.models.load_model(path(model_dir, MODEL_FILE))


def save_encoder(encoder: keras.Model, model_dir: str, architecture: str, width: float) -> None:
    encoder.save(path(model_dir, ENCODER_FILE))
    write_text(model_dir, ENCODER_DESCRIPTION_FILE, json.dumps({"architecture": architecture, "width": width}))


def load_encoder(model_dir: str) -> keras.Model:
    _register_custom_objects()
    return keras.models.load_model(path(model_dir, ENCODER_FILE))
