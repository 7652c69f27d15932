"""One writer per output folder (beam_jobs.contracts.folder_lock through publish.publishing), on a local
folder; the object-store lock is tested against a GCS emulator in test_object_storage.py."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from beam_jobs.contracts import folder_lock
from beam_jobs.contracts.publish import check_complete, publishing
from beam_jobs.contracts.storage import join, write_text

HOLDER = textwrap.dedent("""
    import sys, time
    from beam_jobs.contracts.publish import publishing
    with publishing(sys.argv[1], "extract") as publication:
        print("holding", flush=True)
        time.sleep(600)
""")


def _start_holder(folder):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, folder], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    return process


def test_a_second_run_into_a_live_runs_folder_fails_at_once_naming_it_and_a_killed_runs_lock_is_taken_over(
        tmp_path, capsys):
    folder = str(tmp_path / "features")
    holder = _start_holder(folder)
    started = []
    try:
        with pytest.raises(folder_lock.FolderBusyError, match=rf"extract on host \S+, process {holder.pid}, started"):
            with publishing(folder, "extract"):
                started.append(True)
        assert not started  # refused before the job did any work
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.path.exists(os.path.join(folder, folder_lock.LOCK_FILE))  # a killed run cannot clean up
    with publishing(folder, "extract") as publication:
        write_text(join(publication.staging, "counts.json"), "{}")
    assert f"taking over the lock left by a run that is no longer running (extract on host" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(folder, folder_lock.LOCK_FILE))
    assert set(check_complete(folder, "an extraction")["files"]) == {"counts.json"}


def test_runs_one_after_another_into_one_folder_need_no_takeover(tmp_path, capsys):
    folder = str(tmp_path / "out")
    for run in range(2):
        with publishing(folder, "extract") as publication:
            write_text(join(publication.staging, "run.txt"), str(run))
    assert "taking over" not in capsys.readouterr().out
    assert open(os.path.join(folder, "run.txt")).read() == "1"


def test_a_filesystem_without_locks_runs_unlocked_and_says_so(tmp_path, monkeypatch, capsys):
    import errno as errors

    def no_locks(descriptor, operation):
        raise OSError(errors.ENOLCK, os.strerror(errors.ENOLCK))

    monkeypatch.setattr(folder_lock.fcntl, "flock", no_locks)  # e.g. a FUSE mount of a bucket
    with publishing(str(tmp_path / "out"), "extract") as publication:
        write_text(join(publication.staging, "counts.json"), "{}")
    assert "this filesystem has no file locks" in capsys.readouterr().out
    assert set(check_complete(str(tmp_path / "out"), "an extraction")["files"]) == {"counts.json"}
