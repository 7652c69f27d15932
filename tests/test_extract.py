import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.contracts import features, schema
from beam_jobs.extract import extract
from beam_jobs.contracts.manifest import DatasetError, Manifest, read_manifest, write_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.feature_set import read_counts, shard_pattern


def read_examples(features_dir, split):
    return [schema.decode_patch(record.numpy())
            for record in tf.data.TFRecordDataset(sorted(glob.glob(shard_pattern(features_dir, split))))]


def test_counts_stats_and_patches_are_consistent(manifest_dir, features_dir):
    manifest = read_manifest(manifest_dir)
    counts = read_counts(features_dir)
    for split in manifest.splits:
        expected = sum(row.split == split for row in manifest.rows)
        assert counts[split]["read"] == counts[split]["written"] == expected and counts[split]["rejected"] == 0
        assert counts[split]["patches"] == len(read_examples(features_dir, split))
    with open(os.path.join(features_dir, "params.json")) as handle:
        assert FeatureParams.from_json(handle.read()) == FeatureParams()


def test_patches_hold_the_clip_features_and_labels(manifest_dir, features_dir):
    manifest = read_manifest(manifest_dir)
    row = next(row for row in manifest.rows if row.split == "train")
    with open(row.audio_path, "rb") as handle:
        waveform, rate = features.decode_audio(handle.read(), row.audio_path)
    expected = features.cut_patches(features.waveform_to_log_mel(waveform, rate, FeatureParams()), FeatureParams())
    patches = sorted((example for example in read_examples(features_dir, "train")
                      if example[schema.CLIP_ID] == row.clip_id), key=lambda example: example[schema.PATCH_INDEX])
    assert len(patches) == len(expected)
    np.testing.assert_allclose(np.stack([p[schema.LOGMEL] for p in patches]), expected, atol=1e-5)
    labels = patches[0][schema.LABELS]
    assert [manifest.vocabulary[i] for i in np.flatnonzero(labels)] == list(row.labels)
    np.testing.assert_array_equal(patches[0][schema.LABEL_MASK], np.ones_like(labels))


def test_records_are_byte_identical_to_the_reference_decode_and_features(manifest_dir, features_dir):
    # The reference decodes as the job did before its fast paths (libsndfile's float32 read, numpy's mean over
    # channels) and runs the feature functions with one BLAS thread, as the job's workers do.
    import io

    import soundfile
    import threadpoolctl

    manifest, params = read_manifest(manifest_dir), FeatureParams()
    class_index = {label: i for i, label in enumerate(manifest.vocabulary)}
    expected = []
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for row in manifest.rows:
            with open(row.audio_path, "rb") as handle:
                audio, rate = soundfile.read(io.BytesIO(handle.read()), dtype="float32", always_2d=True)
            log_mel = features.waveform_to_log_mel(audio.mean(axis=1), rate, params)
            labels = np.zeros(len(class_index), np.float32)
            labels[[class_index[label] for label in row.labels]] = 1.0
            expected += [schema.encode_patch(row.clip_id, index, patch, labels, np.ones_like(labels))
                         for index, patch in enumerate(features.examples_of(log_mel, params))]
    written = [record.numpy() for split in manifest.splits
               for record in tf.data.TFRecordDataset(sorted(glob.glob(shard_pattern(features_dir, split))))]
    assert len(written) == len(expected)
    assert sorted(written) == sorted(expected)


def test_band_stats_match_numpy_over_all_train_frames(manifest_dir, features_dir):
    manifest = read_manifest(manifest_dir)
    frames = []
    for row in manifest.rows:
        if row.split == "train":
            with open(row.audio_path, "rb") as handle:
                waveform, rate = features.decode_audio(handle.read(), row.audio_path)
            frames.append(features.waveform_to_log_mel(waveform, rate, FeatureParams()))
    frames = np.concatenate(frames)
    with open(os.path.join(features_dir, "stats.json")) as handle:
        stats = json.load(handle)["train"]
    assert stats["frames"] == len(frames)
    np.testing.assert_allclose(stats["mean"], frames.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["std"], frames.std(axis=0), rtol=1e-3, atol=1e-3)


def test_bad_clips_go_to_dead_letters_and_every_clip_is_accounted_for(manifest_dir, tmp_path):
    manifest = read_manifest(manifest_dir)
    with open(manifest.rows[0].audio_path, "rb") as handle:
        good_wav = handle.read()
    bad_files = {
        "corrupt": good_wav[:8] + b"NOTAWAVE" + good_wav[16:],  # RIFF header damaged
        "truncated": good_wav[:20],
        "empty": b"",
        "not_audio": b"<html>not a sound</html>" * 20,
    }
    rows = list(manifest.rows[:12])
    for index, (name, data) in enumerate(bad_files.items()):
        path = tmp_path / f"{name}.wav"
        path.write_bytes(data)
        rows[index] = dataclasses.replace(rows[index], audio_path=str(path))
    rows[len(bad_files)] = dataclasses.replace(rows[len(bad_files)], audio_path=str(tmp_path / "missing.wav"))
    bad_manifest = str(tmp_path / "manifest")
    write_manifest(bad_manifest, Manifest(rows=tuple(rows), vocabulary=manifest.vocabulary, source={}))

    output = str(tmp_path / "features")
    counts = extract(bad_manifest, output)
    assert sum(split["read"] for split in counts.values()) == 12
    assert sum(split["rejected"] for split in counts.values()) == 5
    for split in counts.values():
        assert split["read"] == split["written"] + split["rejected"]
    with open(os.path.join(output, "dead_letters.jsonl")) as handle:
        letters = {json.loads(line)["path"]: json.loads(line) for line in handle}
    reasons = {os.path.basename(path): letter["reason"] for path, letter in letters.items()}
    assert set(reasons) == {"corrupt.wav", "truncated.wav", "empty.wav", "not_audio.wav", "missing.wav"}
    assert "empty file" in reasons["empty.wav"]
    assert all("cannot decode" in reasons[name] for name in ("corrupt.wav", "not_audio.wav", "truncated.wav"))
    assert "cannot read" in reasons["missing.wav"]
    assert all(letter["clip_id"] in {row.clip_id for row in rows} for letter in letters.values())


def test_bad_manifest_fails_before_any_output(manifest_dir, tmp_path):
    bad = tmp_path / "manifest"
    first = read_manifest(manifest_dir).rows[0]
    write_manifest(str(bad), Manifest(rows=(dataclasses.replace(first, labels=("Not_a_class",)),), vocabulary=("Hum",),
                                      source={}))
    with pytest.raises(DatasetError, match=r"manifest\.jsonl:1: labels not in the vocabulary"):
        extract(str(bad), str(tmp_path / "features"))
    assert not (tmp_path / "features").exists()


def test_unknown_runner_fails_before_any_output(manifest_dir, tmp_path):
    with pytest.raises(ValueError, match="Unknown Beam runner"):
        extract(manifest_dir, str(tmp_path / "features"), beam_args=["--runner=NoSuchRunner"])
    assert not (tmp_path / "features").exists()


def test_direct_runner_runs_in_process_without_prism_and_remote_runners_pass_through():
    from apache_beam.options.pipeline_options import StandardOptions

    from beam_jobs.runner import pipeline_options

    assert pipeline_options([]).view_as(StandardOptions).runner == "FnApiRunner"
    assert pipeline_options(["--runner=DirectRunner"]).view_as(StandardOptions).runner == "FnApiRunner"
    dataflow = pipeline_options(["--runner=DataflowRunner", "--project=p", "--region=europe-west4"])
    assert dataflow.view_as(StandardOptions).runner == "DataflowRunner"


def test_local_worker_count_follows_the_task_cpus_and_the_job_size(monkeypatch):
    from apache_beam.options.pipeline_options import DirectOptions

    from beam_jobs.runner import ITEMS_PER_LOCAL_WORKER, TASK_CPUS_ENV, pipeline_options, runs_in_parallel

    monkeypatch.setenv(TASK_CPUS_ENV, "4")
    workers = {items: pipeline_options([], items=items).view_as(DirectOptions)
               for items in (0, ITEMS_PER_LOCAL_WORKER - 1, 2 * ITEMS_PER_LOCAL_WORKER, 100 * ITEMS_PER_LOCAL_WORKER)}
    assert [options.direct_num_workers for options in workers.values()] == [1, 1, 2, 4]  # capped at the task's CPUs
    assert workers[100 * ITEMS_PER_LOCAL_WORKER].direct_running_mode == "multi_processing"
    explicit = pipeline_options(["--direct_num_workers=1"], items=100 * ITEMS_PER_LOCAL_WORKER)
    assert explicit.view_as(DirectOptions).direct_num_workers == 1 and not runs_in_parallel(explicit)
    assert runs_in_parallel(pipeline_options([], items=100 * ITEMS_PER_LOCAL_WORKER))
    assert runs_in_parallel(pipeline_options(["--runner=DataflowRunner", "--project=p", "--region=r"]))
    monkeypatch.setenv(TASK_CPUS_ENV, "four")
    with pytest.raises(ValueError, match="TASK_CPUS"):
        pipeline_options([], items=10)


def test_only_a_harness_process_freezes_its_collector():
    # A worker skips walking its imports' objects at exit; the process that launches jobs (this test session, a
    # notebook) keeps collecting its cycles. Fresh processes, so that this session's collector is left alone.
    from beam_jobs.runner import HARNESS_ENV

    code = "import gc; from beam_jobs.runner import settle_worker_process; settle_worker_process(); " \
           "print(gc.get_freeze_count())"
    frozen = {}
    for harness in (False, True):
        env = {key: value for key, value in os.environ.items() if key != HARNESS_ENV}
        if harness:
            env[HARNESS_ENV] = "url: 'localhost:1'"
        frozen[harness] = int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                             check=True).stdout)
    assert frozen[False] == 0 and frozen[True] > 1000


def test_band_sums_are_exact_in_any_order_and_any_grouping():
    from fractions import Fraction

    from beam_jobs.contracts.split_reports import EXACT_BLOCK_ROWS, exact_column_sums, exact_mean

    rng = np.random.default_rng(3)
    rows = 2 * EXACT_BLOCK_ROWS + 500  # several int64 blocks
    values = rng.normal(size=(rows, 4)) * 10.0 ** rng.integers(-8, 8, size=(rows, 1))  # sums that float64 rounds
    values[:5, 1] = [5e-324, -5e-324, 2.2e-308, 0.0, -0.0]  # subnormals (the smallest, one near the normals), zeros
    values[5:8, 2] = [1.7e308, -1.7e308, 1e300]  # exponents near the top of the range
    values[:, 3] = rng.uniform(0.5, 1.0, size=rows)  # one exponent: more mantissas than one int64 sum holds
    expected = [float(sum(map(Fraction, values[:, band].tolist())) / rows) for band in range(4)]
    for order in (np.arange(rows), rng.permutation(rows), np.arange(rows)[::-1]):
        shuffled = values[order]
        # one block of rows, or bundles of uneven sizes whose sums are added afterwards
        for cuts in ([], [1, 700, 1500, 3000]):
            parts = [exact_column_sums(part) for part in np.split(shuffled, cuts) if len(part)]
            sums = tuple(map(sum, zip(*parts)))
            assert exact_mean(sums, rows).tolist() == expected
    with pytest.raises(ValueError, match="finite"):
        exact_column_sums(np.array([[1.0, np.inf]]))


def test_two_worker_processes_write_exactly_what_one_writes(manifest_dir, tmp_path):
    outputs = []
    for flags in (["--direct_num_workers=1"], ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]):
        features_dir = str(tmp_path / flags[0].split("=")[1])
        counts = extract(manifest_dir, features_dir, beam_args=flags)
        with open(os.path.join(features_dir, "stats.json")) as handle:
            stats = handle.read()
        records = {split: sorted(record.numpy() for record in
                                 tf.data.TFRecordDataset(sorted(glob.glob(shard_pattern(features_dir, split)))))
                   for split in counts}
        outputs.append((counts, stats, records))
    assert outputs[0] == outputs[1]  # the records byte for byte (in any shard order), the statistics to the bit


def test_a_runner_that_loses_elements_fails_the_job_and_publishes_nothing(manifest_dir, tmp_path, monkeypatch):
    # Beam's Dask runner lost the outputs of finish_bundle and the tagged outputs: counts.json came out {} with
    # no shards, and read = written + rejected held trivially. The job compares what it read with its manifest.
    from beam_jobs import extract as extract_module
    from beam_jobs.contracts.storage import write_json

    def losing_everything(pipeline, manifest_dir, manifest, params, staging, *args, **kwargs):
        write_json(os.path.join(staging, "counts.json"), {})

    monkeypatch.setattr(extract_module, "build_pipeline", losing_everything)
    with pytest.raises(RuntimeError, match=r"split \w+: the job was given \d+ clips and counted 0 read"):
        extract(manifest_dir, str(tmp_path / "features"))
    assert not (tmp_path / "features").exists() or not os.listdir(tmp_path / "features")  # nothing published
