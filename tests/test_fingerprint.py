"""KFP's cache keys a task on its inputs: a task reading files under a location it takes as a string is keyed on
the files' fingerprint (names, sizes, modification times), computed by a task that is never cached."""
import os

import yaml

from beam_jobs.fingerprint import location_fingerprint
from pipelines import compile as compile_module
from pipelines import discover
from pipelines.deployment import Deployment


def test_the_fingerprint_changes_with_any_file_and_only_then(tmp_path):
    root = tmp_path / "dataset"
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "a.wav").write_bytes(b"RIFF" + bytes(100))
    (root / "meta.csv").write_text("fname,labels\na,Dog\n")
    first = location_fingerprint(str(root))
    assert first == location_fingerprint(str(root)) == location_fingerprint(f"{root}/")  # nothing changed
    assert first.startswith("2 files, sha256:")
    (root / "meta.csv").write_text("fname,labels\na,Cat\n")  # same size, rewritten: a new modification time
    os.utime(root / "meta.csv", (1, 1))
    rewritten = location_fingerprint(str(root))
    (root / "audio" / "b.wav").write_bytes(b"RIFF")  # a file added (e.g. the rest of an unzip)
    added = location_fingerprint(str(root))
    (root / "audio" / "a.wav").unlink()
    removed = location_fingerprint(str(root))
    assert len({first, rewritten, added, removed}) == 4
    assert location_fingerprint("") == ""  # a synthetic dataset: the run's parameters make it
    assert location_fingerprint(str(root / "audio" / "b.wav")).startswith("1 files")  # a single file


def test_every_task_reading_an_external_location_is_keyed_on_its_fingerprint(tmp_path):
    """With caching on, the fingerprint tasks are never cached and the tasks that read the locations take their
    output; nothing else reads dataset_root, raw_dir or the audio to tag."""
    readers = {"ingest-dataset": "fingerprint", "nominate-candidates": "fingerprint",
               "tag-audio-files": "audio_fingerprint"}
    for name in ("fsd50k_baseline", "noisy_labels", "dataset_creation", "tag_audio"):
        path = compile_module.compile_pipeline(discover()[name], str(tmp_path / f"{name}.yaml"),
                                               Deployment(enable_caching=True))
        document = next(yaml.safe_load_all(open(path)))  # the pipeline spec (then the platform spec)
        tasks = {key: task for component in [document["root"], *document["components"].values()]
                 for key, task in component.get("dag", {}).get("tasks", {}).items()}
        fingerprints = [key for key in tasks if key.startswith("fingerprint-locations")]
        assert fingerprints and all(tasks[key]["cachingOptions"] == {} for key in fingerprints), name
        reader = next(key for key in tasks if key in readers)
        source = tasks[reader]["inputs"]["parameters"][readers[reader]]["taskOutputParameter"]["producerTask"]
        assert source.startswith("fingerprint-locations"), (name, reader)
        assert tasks[reader]["cachingOptions"] == {"enableCache": True}
