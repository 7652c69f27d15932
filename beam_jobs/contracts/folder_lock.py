"""One writer per output folder: the lock a job takes before it touches its output folder.

The lock is `_LOCK.json` in the folder, naming its holder (job, host, process, start time). A second run
into the folder while the first is alive fails at once, before any work, with that name; a lock whose
holder is gone is stale and taken over (said in the log).

- Local folders: an exclusive `flock` on the lock file. The kernel releases it when the holding process
  dies (killed, out of memory), so a lock is stale exactly when nobody holds the flock.
- gs:// folders: the lock object is created with `ifGenerationMatch=0` (only one creator wins), and its
  holder rewrites it every HEARTBEAT_SECONDS under a precondition on its own generation (a lease). A lock
  object not rewritten for LEASE_SECONDS is stale: taking it over is a write conditioned on the stale
  generation, so of two runs that find it stale, one wins. A holder that loses its lease (its heartbeat is
  refused) fails instead of publishing.
- Other object stores (s3://, ...) have no conditional write through Beam's filesystems: the job runs
  unlocked and says so in its log.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.storage import join

LOCK_FILE = "_LOCK.json"
HEARTBEAT_SECONDS = 30.0
LEASE_SECONDS = 180.0  # six missed heartbeats


class FolderBusyError(RuntimeError):
    """Another live run is writing the output folder."""


class LockLostError(RuntimeError):
    """This run's lease on an object-store folder was taken over (its heartbeats stopped for too long)."""


def _holder(job: str) -> dict:
    return {"job": job, "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def describe(holder: dict) -> str:
    return (f"{holder.get('job', '?')} on host {holder.get('host', '?')}, process {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


def _busy(folder: str, holder: dict) -> FolderBusyError:
    return FolderBusyError(f"{folder} is being written by another run ({describe(holder)}); wait for it to end "
                           f"or give this run another output folder")


def _parse(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


@contextlib.contextmanager
def _local_lock(folder: str, holder: dict):
    os.makedirs(folder, exist_ok=True)
    lock_path = os.path.join(folder, LOCK_FILE)
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno not in (errno.EAGAIN, errno.EACCES):  # no locks on this filesystem (e.g. a FUSE mount)
                print(f"{folder}: this filesystem has no file locks ({os.strerror(error.errno)}), so a second run "
                      f"into this folder is not detected; give each run its own output folder", flush=True)
                yield
                return
            other = {}
            for _ in range(20):  # the holder writes its name just after taking the flock
                with open(lock_path) as handle:
                    other = _parse(handle.read())
                if other:
                    break
                time.sleep(0.05)
            raise _busy(folder, other) from None
        try:  # the file we locked must still be the one at the path (a releasing holder unlinks it)
            same = os.fstat(descriptor).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        previous = _parse(os.pread(descriptor, 1 << 16, 0).decode("utf-8", "replace"))
        if previous:
            print(f"{folder}: taking over the lock left by a run that is no longer running ({describe(previous)})",
                  flush=True)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode("utf-8"), 0)
        os.fsync(descriptor)
        yield
    finally:
        os.unlink(lock_path)
        os.close(descriptor)


def storage_client():
    """The google-cloud-storage client Beam's GCS filesystem makes (its credentials, or anonymous where
    there are none), so the lock reaches the bucket exactly as the job's reads and writes do."""
    from apache_beam.io.gcp.gcsio import create_storage_client
    from apache_beam.options.pipeline_options import PipelineOptions
    return create_storage_client(PipelineOptions())


def _gcs_blob(path: str):
    bucket, _, name = path[len("gs://"):].partition("/")
    return storage_client().bucket(bucket).blob(name)


class _Lease:
    """The heartbeat of an object-store lock: rewrites the lock object under a precondition on its own
    generation; remembers a refusal, which `check` turns into LockLostError."""

    def __init__(self, folder: str, blob, holder: dict, generation: int):
        self.folder, self.blob, self.holder, self.generation = folder, blob, holder, generation
        self.lost: Exception | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="folder-lock-heartbeat")
        self.thread.start()

    def _beat(self):
        from google.api_core import exceptions
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                self.blob.upload_from_string(json.dumps(self.holder), if_generation_match=self.generation)
                self.generation = self.blob.generation
            except exceptions.PreconditionFailed as error:
                self.lost = error
                return
            except exceptions.GoogleAPIError:  # a transient error: the next beat tries again
                continue

    def check(self):
        if self.lost is not None:
            raise LockLostError(f"{self.folder}: this run's lock was taken over by another run after its heartbeat "
                                f"stopped for over {LEASE_SECONDS:.0f} s; its output is not published")

    def stop(self):
        self.stopped.set()
        self.thread.join()


@contextlib.contextmanager
def _gcs_lock(folder: str, holder: dict):
    from google.api_core import exceptions
    blob = _gcs_blob(join(folder, LOCK_FILE))
    while True:
        try:
            blob.upload_from_string(json.dumps(holder), if_generation_match=0)
            break
        except exceptions.PreconditionFailed:
            pass
        try:
            blob.reload()
            other = _parse(blob.download_as_text(if_generation_match=blob.generation))
        except (exceptions.NotFound, exceptions.PreconditionFailed):
            continue  # released or rewritten meanwhile: look again
        age = (datetime.datetime.now(datetime.timezone.utc) - blob.updated).total_seconds()
        if age < LEASE_SECONDS:
            raise _busy(folder, other)
        try:
            blob.upload_from_string(json.dumps(holder), if_generation_match=blob.generation)
        except exceptions.PreconditionFailed:
            continue  # another run took it over first
        print(f"{folder}: taking over the lock of a run whose heartbeat stopped {age:.0f} s ago "
              f"({describe(other)})", flush=True)
        break
    lease = _Lease(folder, blob, holder, blob.generation)
    try:
        yield lease.check
    finally:
        lease.stop()
        try:  # only our own lock (the generation test is for emulators that ignore preconditions on delete)
            blob.reload()
            if blob.generation == lease.generation:
                blob.delete(if_generation_match=lease.generation)
        except (exceptions.NotFound, exceptions.PreconditionFailed):
            pass  # taken over: the other run's lock stays


@contextlib.contextmanager
def holding(folder: str, job: str):
    """Holds the folder's lock while the block runs; yields a function that raises when the lock was lost
    (call it just before publishing). FolderBusyError at once when a live run holds it."""
    folder = folder.rstrip("/")
    holder = _holder(job)
    scheme = FileSystems.get_scheme(folder)
    if scheme is None:
        with _local_lock(folder, holder):
            yield lambda: None
    elif scheme == "gs":
        with _gcs_lock(folder, holder) as check:
            yield check
    else:
        print(f"{folder}: {scheme}:// has no conditional write here, so a second run into this folder is not "
              f"detected; give each run its own output folder", flush=True)
        yield lambda: None
