"""The Beam jobs' PTransforms that no other test names, each run in memory with TestPipeline: what each one
promises of its output, against a reference computed here (by hand, or by the function the transform wraps)."""
import json

import apache_beam as beam
import numpy as np
import soundfile
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import scoring, synthetic
from beam_jobs.contracts import feature_set, features, schema, score_table
from beam_jobs.contracts.manifest import Manifest, ManifestRow, ReadManifestRows, write_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.split_reports import READ, REJECTED, WRITTEN, ClipSummary
from beam_jobs.creation.nominate import KeywordIndex, NominateCandidates
from beam_jobs.creation.raw import ClipRecord
from beam_jobs.creation.validate import ACCEPTED, REJECTED as VOTE_REJECTED, UNRESOLVED, AggregateVotes
from beam_jobs.extract import ComputeClipFeatures


def test_compute_clip_features_gives_each_clip_its_log_mel_and_labels_and_rejects_broken_audio(tmp_path):
    params = FeatureParams()
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(params.sample_rate) / params.sample_rate)).astype(np.float32)
    soundfile.write(tmp_path / "tone.wav", tone, params.sample_rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF but not audio")
    rows = [ManifestRow("tone", str(tmp_path / "tone.wav"), "train", ("b",)),
            ManifestRow("broken", str(tmp_path / "broken.wav"), "train", ("a",))]
    reference, _ = features.clip_log_mel(str(tmp_path / "tone.wav"), params)

    def matches_reference(clips):
        (clip,) = clips
        assert clip.clip_id == "tone" and clip.split == "train" and not clip.silent
        assert clip.labels.tolist() == [0.0, 1.0]
        # the DoFn limits BLAS to one thread: sums in another order, equal to float32 rounding
        np.testing.assert_allclose(clip.logmel, reference, rtol=1e-6, atol=1e-5)

    with test_pipeline.TestPipeline() as p:
        clips, failures = p | beam.Create(rows) | ComputeClipFeatures(params, {"a": 0, "b": 1})
        assert_that(clips, matches_reference, label="Clips")
        assert_that(failures | beam.Map(lambda failure: failure[0].clip_id), equal_to(["broken"]), label="Failed")


def test_write_feature_set_writes_shards_clip_sums_dead_letters_and_exact_reports(tmp_path):
    rows = [ManifestRow(f"c{i}", f"/a/c{i}.wav", "train", ("x",)) for i in range(3)]
    summaries = [ClipSummary("c0", "train", 2, 1, False, (1.0, 2.0), (1.0, 4.0)),
                 ClipSummary("c1", "train", 2, 1, True, (3.0, 2.0), (5.0, 2.0))]
    dead_letter = json.dumps({"clip_id": "c2", "path": "/a/c2.wav", "split": "train", "reason": "truncated"})
    with test_pipeline.TestPipeline() as p:
        inputs = {"examples": p | "Examples" >> beam.Create([("train", b"first"), ("train", b"second")]),
                  READ: p | "Read" >> beam.Create(rows), WRITTEN: p | "Written" >> beam.Create(summaries),
                  REJECTED: p | "Rejected" >> beam.Create(rows[2:]),
                  "dead_letters": p | "DeadLetters" >> beam.Create([dead_letter])}
        _ = inputs | feature_set.WriteFeatureSet(str(tmp_path), ["train"], num_shards=1)
    counts = json.loads((tmp_path / feature_set.COUNTS_FILE).read_text())
    assert counts == {"train": {"read": 3, "rejected": 1, "written": 2, "silent": 1, "patches": 2}}
    stats = json.loads((tmp_path / feature_set.STATS_FILE).read_text())["train"]
    # 4 frames; per band the sums 4 and 4, the sums of squares 6 and 6: mean 1, variance 6/4 - 1
    assert stats["frames"] == 4 and stats["mean"] == [1.0, 1.0] and stats["std"] == [0.5 ** 0.5] * 2
    shard = (tmp_path / "train-00000-of-00001.tfrecord").read_bytes()
    assert len(shard) == sum(len(feature_set.tfrecord_record(payload)) for payload in (b"first", b"second"))
    assert feature_set.tfrecord_record(b"first") in shard and feature_set.tfrecord_record(b"second") in shard
    assert (tmp_path / feature_set.DEAD_LETTERS_FILE).read_text().splitlines() == [dead_letter]
    clip_sums = [ClipSummary.from_json(line) for path in sorted(tmp_path.glob(f"{feature_set.CLIP_SUMS_FILE}-*"))
                 for line in path.read_text().splitlines()]
    assert sorted(clip_sums) == sorted(summaries)


def test_normalise_patches_scales_each_patch_by_the_models_statistics():
    logmel = np.arange(6, dtype=np.float32).reshape(3, 2)
    mean, std = np.array([1.0, 2.0], np.float32), np.array([2.0, 4.0], np.float32)
    patch = schema.encode_patch("clip", 0, logmel, np.ones(1, np.float32), np.ones(1, np.float32))

    def normalised(pairs):
        ((clip_id, values),) = pairs
        assert clip_id == "clip"
        np.testing.assert_allclose(values, [[-0.5, -0.25], [0.5, 0.25], [1.5, 0.75]])

    with test_pipeline.TestPipeline() as p:
        assert_that(p | beam.Create([patch]) | scoring.NormalisePatches(mean, std), normalised)


def test_a_score_table_written_in_shards_reads_back_row_for_row(tmp_path):
    vocabulary = ["Dog", "Bark, loud", 'Say "hi"']  # names that need CSV quoting
    table = {"a": [0.5, 0.25, 1.0], "b": [0.0, 0.125, 0.75]}
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create([score_table.row(clip, 3, scores) for clip, scores in table.items()])
        _ = rows | score_table.WriteScoreTable(str(tmp_path), vocabulary)
    for path in tmp_path.glob("scores-*.csv"):
        assert path.read_text().splitlines()[0] == score_table.header(vocabulary)
    with test_pipeline.TestPipeline() as p:
        read = p | score_table.ReadScoreTable(str(tmp_path)) | beam.MapTuple(lambda clip, scores: (clip, list(scores)))
        assert_that(read, equal_to(list(table.items())))


def test_read_manifest_rows_keeps_the_rows_of_the_asked_splits(tmp_path):
    rows = (ManifestRow("a", "/a.wav", "train", ("x",), uploader="u1", flags={"manually_verified": True}),
            ManifestRow("b", "/b.wav", "eval", ("y",), negatives=("x",)),
            ManifestRow("c", "/c.wav", "val", ("x", "y")))
    write_manifest(str(tmp_path), Manifest(rows=rows, vocabulary=("x", "y"), source={"format": "test"}))
    for spread in (False, True):
        with test_pipeline.TestPipeline() as p:
            assert_that(p | ReadManifestRows(str(tmp_path), ["train", "eval"], spread=spread), equal_to(rows[:2]))


def test_aggregate_votes_decides_each_pair_by_agreement():
    votes = [("c1", "/m/dog", "r1", "PP"), ("c1", "/m/dog", "r2", "PNP"), ("c1", "/m/dog", "r3", "NP"),
             ("c1", "/m/cat", "r1", "NP"), ("c1", "/m/cat", "r2", "NP"),
             ("c2", "/m/dog", "r2", "PP"), ("c2", "/m/dog", "r1", "U")]
    expected = [
        {"clip": "c1", "class": "/m/dog", "votes": ["PP", "PNP", "NP"], "decision": ACCEPTED, "predominance": "PP",
         "nominated": True},
        {"clip": "c1", "class": "/m/cat", "votes": ["NP", "NP"], "decision": VOTE_REJECTED, "predominance": None,
         "nominated": False},
        {"clip": "c2", "class": "/m/dog", "votes": ["U", "PP"], "decision": UNRESOLVED, "predominance": None,
         "nominated": True}]
    with test_pipeline.TestPipeline() as p:
        ratings = p | beam.Create(votes) | AggregateVotes(2, {("c1", "/m/dog"), ("c2", "/m/dog")})
        assert_that(ratings | beam.Map(json.dumps, sort_keys=True),
                    equal_to([json.dumps(rating, sort_keys=True) for rating in expected]))


def test_nominate_candidates_matches_keyword_stems_in_the_chosen_fields():
    keywords = {"/m/bark": ("dog bark",), "/m/chime": ("wind chime",), "/m/rain": ("rain",)}
    records = [ClipRecord("1", "u", "Dogs barking at night", ("Wind-Chimes",), "rain all day", "CC0", "/1.wav"),
               ClipRecord("2", "u", "street", ("windchime",), "", "CC0", "/2.wav")]
    expected = [{"clip": "1", "candidates": [
                    {"class": "/m/bark", "keywords": ["dog bark"], "fields": ["title"]},
                    {"class": "/m/chime", "keywords": ["wind chime"], "fields": ["tags"]}]},
                {"clip": "2", "candidates": [{"class": "/m/chime", "keywords": ["wind chime"], "fields": ["tags"]}]}]
    assert KeywordIndex(keywords).longest == 2
    with test_pipeline.TestPipeline() as p:  # the description ("rain") is not among the fields
        nominated = p | beam.Create(records) | NominateCandidates(keywords, ("tags", "title"))
        assert_that(nominated | beam.Map(json.dumps, sort_keys=True),
                    equal_to([json.dumps(line, sort_keys=True) for line in expected]))


def test_write_dataset_in_memory_writes_what_the_generator_writes(tmp_path):
    config = synthetic.SyntheticConfig(format="fsdnoisy18k", clips=50, seed=5)
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create(range(config.clips)) | synthetic.WriteDataset(config, str(tmp_path / "in_memory"))
    synthetic.generate(str(tmp_path / "generated"), config.clips, config.seed, dataset_format="fsdnoisy18k")
    written = sorted(path.relative_to(tmp_path / "in_memory") for path in (tmp_path / "in_memory").rglob("*")
                     if path.is_file())
    assert len([path for path in written if path.suffix == ".wav"]) == config.clips
    for relative in written:
        assert (tmp_path / "in_memory" / relative).read_bytes() == (tmp_path / "generated" / relative).read_bytes()
