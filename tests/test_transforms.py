"""Each Beam job's steps as PTransforms, run in memory with TestPipeline and checked with assert_that."""
import glob
import hashlib
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import prune, relabel, scoring
from beam_jobs.contracts import feature_set, features, schema, score_table
from beam_jobs.contracts.manifest import ManifestRow, read_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.split_reports import SummariseSplits
from beam_jobs.extract import ClipFeatures, clip_summary, split_examples
from keras_models.losses import LossParams

PARAMS = FeatureParams()


def close_to(expected, tolerance=1e-9):
    """assert_that matcher for one element: a structure of numbers and arrays equal to `expected`."""
    def match(actual):
        assert len(actual) == 1, actual
        np.testing.assert_allclose(np.asarray(actual[0], dtype=float), np.asarray(expected, dtype=float),
                                   rtol=tolerance, atol=tolerance)
    return match


def test_split_summaries_count_every_clip_the_silent_ones_and_give_the_band_statistics():
    rng = np.random.default_rng(0)
    rows = [ManifestRow(f"c{i}", f"/a/c{i}.wav", split, ("x",)) for i, split in enumerate(["train"] * 3 + ["val"] * 2)]
    logmels = {row.clip_id: rng.normal(size=(n, PARAMS.n_mels)).astype(np.float32)
               for row, n in zip(rows, (101, 150, 230, 101, 160))}
    written = [clip_summary(ClipFeatures(row.clip_id, row.split, logmels[row.clip_id], np.ones(1, np.float32),
                                         silent=row.clip_id == "c1"), PARAMS)
               for row in rows if row.clip_id != "c4"]
    failed = [rows[4]]
    train = np.concatenate([logmels[f"c{i}"] for i in range(3)]).astype(np.float64)
    with test_pipeline.TestPipeline() as p:
        reports = ({"read": p | "Rows" >> beam.Create(rows), "written": p | "Clips" >> beam.Create(written),
                    "rejected": p | "Failed" >> beam.Create(failed)}
                   | SummariseSplits())
        counts = reports | "Counts" >> beam.Map(lambda report: report[0])
        assert_that(counts, equal_to([{
            "train": {"read": 3, "rejected": 0, "written": 3, "silent": 1, "patches": 1 + 1 + 3},  # 0.5 s hop
            "val": {"read": 2, "rejected": 1, "written": 1, "silent": 0, "patches": 1}}]), label="CheckCounts")
        train_stats = reports | "TrainStats" >> beam.Map(
            lambda report: [report[1]["train"]["frames"], *report[1]["train"]["mean"], *report[1]["train"]["std"]])
        assert_that(train_stats, close_to([len(train), *train.mean(axis=0), *train.std(axis=0)], 1e-6),
                    label="CheckStats")


@pytest.mark.parametrize("aggregation", ["mean", "geometric_mean"])
def test_clip_scores_aggregate_patch_scores_per_clip(aggregation):
    patches = [("a", np.array([0.2, 0.8])), ("a", np.array([0.4, 0.1])), ("b", np.array([0.5, 0.5])),
               ("a", np.array([0.6, 0.0]))]
    a = np.array([[0.2, 0.8], [0.4, 0.1], [0.6, 0.0]])
    expected_a = (a.mean(axis=0) if aggregation == "mean"
                  else np.exp(np.log(np.maximum(a, 1e-7)).mean(axis=0)))  # a zero is floored, not -inf
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create(patches) | scoring.AggregateClipScores(aggregation)
        assert_that(rows, equal_to([",".join(["a", "3", *(f"{value:.6g}" for value in expected_a)]), "b,1,0.5,0.5"]))


def test_remasking_zeroes_only_the_flagged_classes_of_the_flagged_clips():
    labels = np.array([1, 0, 0], np.float32)
    def patch(clip_id, index):
        return schema.encode_patch(clip_id, index, np.full((2, 3), index, np.float32), labels, np.ones(3, np.float32))
    patches = [("a", patch("a", 0)), ("a", patch("a", 1)), ("b", patch("b", 0))]
    with test_pipeline.TestPipeline() as p:
        out = ({"patches": p | "Patches" >> beam.Create(patches), "flagged": p | "Flagged" >> beam.Create([("a", 2)])}
               | relabel.RemaskPatches(3)
               | beam.Map(lambda serialized: (schema.decode_patch(serialized)[schema.CLIP_ID],
                                              schema.decode_patch(serialized)[schema.PATCH_INDEX],
                                              tuple(schema.decode_patch(serialized)[schema.LABEL_MASK]))))
        assert_that(out, equal_to([("a", 0, (1.0, 1.0, 0.0)), ("a", 1, (1.0, 1.0, 0.0)), ("b", 0, (1.0, 1.0, 1.0))]))


def test_flags_are_the_top_tc_percent_of_each_classes_implicit_negatives():
    rng = np.random.default_rng(1)
    scores = {f"c{i:03d}": rng.uniform(size=2) for i in range(200)}
    implicit = {clip: [0, 1] if i % 2 else [0] for i, clip in enumerate(scores)}  # class 1: 100 candidates
    with test_pipeline.TestPipeline() as p:
        found = ({"scores": p | "Scores" >> beam.Create(list(scores.items())),
                  "implicit": p | "Implicit" >> beam.Create(list(implicit.items()))}
                 | relabel.FlagMissingPositives(tc_percent=5))
        flagged = found["flagged"] | beam.MapTuple(lambda clip, c, score: (clip, c))
        expected = []
        for c in (0, 1):
            candidates = sorted(((scores[clip][c], clip) for clip in scores if c in implicit[clip]), reverse=True)
            expected += [(clip, c) for _, clip in candidates[:len(candidates) * 5 // 100]]
        assert_that(flagged, equal_to(expected))


def test_clip_loss_is_the_loss_of_the_clip_score_against_its_label():
    labels = np.array([0, 1, 0], np.float32)
    serialized = schema.encode_patch("a", 0, np.zeros((2, 3), np.float32), labels, np.ones(3, np.float32))
    clip_scores = np.array([0.1, 0.6, 0.3])
    with test_pipeline.TestPipeline() as p:
        losses = ({"patches": p | "Patches" >> beam.Create([("a", serialized)]),
                   "scores": p | "Scores" >> beam.Create([("a", clip_scores)])}
                  | prune.ClipLosses(LossParams("lq", q=0.7))
                  | beam.Map(lambda clip: clip[1]))
        assert_that(losses, close_to((1 - 0.6 ** 0.7) / 0.7, 1e-6))


def test_percentile_split_drops_the_clips_above_the_percentile():
    clips = [(f"c{i}", float(i), [b"x"]) for i in range(100)]
    with test_pipeline.TestPipeline() as p:
        selected = p | beam.Create(clips) | prune.SplitAtPercentile(90)
        assert_that(selected["dropped"] | beam.Map(lambda clip: clip[0]), equal_to([f"c{i}" for i in range(90, 100)]),
                    label="Dropped")
        assert_that(selected["kept"] | "KeptCount" >> beam.combiners.Count.Globally(), equal_to([90]), label="Kept")


def test_shards_written_by_the_shared_writer_are_read_back_by_clip(tmp_path):
    examples = [schema.encode_patch(f"c{i % 3}", i, np.zeros((1, 1), np.float32), np.ones(1, np.float32),
                                    np.ones(1, np.float32)) for i in range(7)]
    with test_pipeline.TestPipeline() as p:
        records = p | beam.Create(examples) | beam.Map(lambda example: ("train", example))
        _ = (records,) | feature_set.WriteFeatureFiles(str(tmp_path), ["train"], num_shards=2, line_files=())
    assert len(glob.glob(feature_set.shard_pattern(str(tmp_path), "train"))) == 2
    assert sorted(os.listdir(tmp_path)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    with test_pipeline.TestPipeline() as p:
        keys = p | feature_set.ReadPatchesByClip(str(tmp_path), "train") | beam.Keys()
        assert_that(keys, equal_to([f"c{i % 3}" for i in range(7)]))


@pytest.mark.parametrize("payload", [b"", bytes(range(256)) * 40])
def test_the_shared_writer_frames_records_as_beams_tfrecord_sink(payload, tmp_path):
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create([payload]) | beam.io.WriteToTFRecord(str(tmp_path / "beam"), shard_name_template="")
    assert (tmp_path / "beam").read_bytes() == feature_set.tfrecord_record(payload)


def feature_files(folder) -> dict[str, list]:
    """A written feature set's files by name: TFRecord shards as their records (read by TensorFlow, which
    checks the framing), text files as their lines."""
    import tensorflow as tf

    return {path.name: ([record.numpy() for record in tf.data.TFRecordDataset(str(path))]
                        if path.suffix == feature_set.SHARD_SUFFIX else path.read_text().splitlines())
            for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("num_shards", [0, 3])
def test_one_sink_writes_each_splits_shards_the_clip_sums_and_one_dead_letters_file(tmp_path, num_shards):
    examples = [("train", b"train %d" % i) for i in range(7)] + [("val", b"val 0")]
    sums = [(feature_set.CLIP_SUMS_FILE, f'{{"clip_id": "c{i}"}}') for i in range(4)]
    letters = [(feature_set.DEAD_LETTERS_FILE, f'{{"reason": "{i}"}}') for i in range(3)]
    with test_pipeline.TestPipeline() as p:
        _ = ((p | "Examples" >> beam.Create(examples), p | "Sums" >> beam.Create(sums),
              p | "Letters" >> beam.Create(letters[:1]), p | "MoreLetters" >> beam.Create(letters[1:]))
             | feature_set.WriteFeatureFiles(str(tmp_path), ["train", "val", "eval"], num_shards))
    files = feature_files(tmp_path)  # nothing else: the temporary files are gone
    shards = num_shards or 1  # 0: one per bundle that wrote the split (here one), and one empty for eval
    shard_names = [f"{split}-{shard:05d}-of-{shards:05d}.tfrecord" for split in ("train", "val", "eval")
                   for shard in range(shards)]
    assert sorted(files) == sorted(shard_names + ["clip_sums-00000-of-00001.jsonl", "dead_letters.jsonl"])
    for split in ("train", "val", "eval"):
        written = [record for name, records in files.items() if name.startswith(f"{split}-") for record in records]
        assert sorted(written) == sorted(example for name, example in examples if name == split)
    assert files["clip_sums-00000-of-00001.jsonl"] == [line for _, line in sums]
    assert sorted(files["dead_letters.jsonl"]) == [line for _, line in letters]  # two bundles' files, joined


def test_publishing_the_written_files_again_after_a_retry_finds_them_in_place(tmp_path):
    temp_dir = tmp_path / ".files-retried"
    temp_dir.mkdir()
    (temp_dir / "train.a").write_bytes(b"records")
    (temp_dir / "train.orphan").write_bytes(b"a failed bundle's")
    (temp_dir / "letters.a").write_text("a\n")
    (temp_dir / "letters.b").write_text("b\n")
    written = [("train", None, str(temp_dir / "train.a")),
               *((feature_set.DEAD_LETTERS_FILE, None, str(temp_dir / f"letters.{part}")) for part in "ab")]
    for _ in range(2):
        feature_set.publish_files(written, str(tmp_path), str(temp_dir), ("train", *feature_set.LINE_FILES), 0)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "clip_sums-00000-of-00001.jsonl", "dead_letters.jsonl", "train-00000-of-00001.tfrecord"]
    assert (tmp_path / "train-00000-of-00001.tfrecord").read_bytes() == b"records"
    assert (tmp_path / "dead_letters.jsonl").read_text() == "a\nb\n"
    with pytest.raises(FileNotFoundError, match="gone before it was published"):
        feature_set.publish_files([("val", None, str(temp_dir / "val.lost"))], str(tmp_path), str(temp_dir),
                                  ("val",), 0)


def test_the_feature_jobs_examples_are_the_feature_functions_bytes(manifest_dir, features_dir):
    """The job adds nothing and loses nothing: its shards hold exactly the examples that the pure feature
    functions give each clip (decode -> mono -> resample -> log-mel -> patches -> encode), computed as the
    job's workers compute them: with one BLAS thread."""
    import tensorflow as tf
    import threadpoolctl

    manifest = read_manifest(manifest_dir)
    class_index = {label: i for i, label in enumerate(manifest.vocabulary)}
    expected = []
    for row in manifest.rows:
        try:
            waveform, rate = features.decode_clip(row.audio_path)
        except features.ClipError:
            continue
        labels = np.zeros(len(class_index), np.float32)
        labels[[class_index[label] for label in row.labels]] = 1
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            logmel = features.log_mel_spectrogram(features.prepare_waveform(waveform, rate, PARAMS), PARAMS)
        expected += [hashlib.sha256(example).hexdigest()
                     for _, example in split_examples(ClipFeatures(row.clip_id, row.split, logmel, labels), PARAMS)]
    written = [hashlib.sha256(record.numpy()).hexdigest()
               for split in manifest.splits
               for record in tf.data.TFRecordDataset(sorted(glob.glob(feature_set.shard_pattern(features_dir, split))))]
    assert len(written) == len(expected) > 100
    assert sorted(written) == sorted(expected)


def test_score_tables_quote_class_names_and_clip_ids_with_commas():
    import csv

    vocabulary = ["Male speech, man speaking", 'Say "hi"', "Dog"]
    header = score_table.header(vocabulary)
    assert next(csv.reader([header])) == ["clip_id", "patches", *vocabulary]
    with test_pipeline.TestPipeline() as p:
        rows = (p | beam.Create([("Y0, take 2", np.array([0.25, 0.5, 1.0]))]) | scoring.AggregateClipScores("mean")
                | beam.Map(score_table.parse_row) | beam.Map(lambda row: (row[0], tuple(row[1]))))
        assert_that(rows, equal_to([("Y0, take 2", (0.25, 0.5, 1.0))]))
