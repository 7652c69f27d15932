import csv
import json
import os

import numpy as np
import pytest
import soundfile

from beam_jobs import synthetic
from beam_jobs.datasets import fsd50k


def test_generation_is_deterministic_from_the_seed(synthetic_root, tmp_path):
    again = synthetic.generate(str(tmp_path / "again"), clips=60, seed=7)
    other = synthetic.generate(str(tmp_path / "other"), clips=60, seed=8)
    for relative in ("FSD50K.ground_truth/dev.csv", "FSD50K.dev_audio/100003.wav"):
        with open(os.path.join(synthetic_root, relative), "rb") as a, open(os.path.join(again, relative), "rb") as b:
            assert a.read() == b.read()
    with open(os.path.join(synthetic_root, "FSD50K.dev_audio/100003.wav"), "rb") as a, \
            open(os.path.join(other, "FSD50K.dev_audio/100003.wav"), "rb") as b:
        assert a.read() != b.read()


def test_layout_and_ontology_follow_fsd50k_and_audioset(synthetic_root):
    with open(os.path.join(synthetic_root, fsd50k.GROUND_TRUTH, "vocabulary.csv")) as handle:
        vocabulary = list(csv.reader(handle))
    assert vocabulary[0] == ["0", synthetic.VOCABULARY[0], synthetic.mid(synthetic.VOCABULARY[0])]  # no header
    with open(os.path.join(synthetic_root, "ontology.json")) as handle:
        ontology = json.load(handle)
    ids = {entry["id"] for entry in ontology}
    parents = [entry for entry in ontology if entry["child_ids"]]
    assert len(parents) >= 3 and all(len(entry["child_ids"]) >= 3 for entry in parents)
    assert all(set(entry) >= {"id", "name", "description", "child_ids", "restrictions"} for entry in ontology)
    assert all(child in ids for entry in ontology for child in entry["child_ids"])
    with open(os.path.join(synthetic_root, fsd50k.METADATA, "dev_clips_info_FSD50K.json")) as handle:
        info = json.load(handle)
    assert all(entry["uploader"] for entry in info.values())


def test_labels_are_propagated_to_parents_and_splits_are_uploader_disjoint():
    config = synthetic.SyntheticConfig(clips=400, seed=3)
    plans = [synthetic.plan_clip(i, config) for i in range(400)]
    for plan in plans:
        leaves = {event.label for event in plan.events}
        assert set(plan.labels) == set(plan.true_labels) == leaves | {synthetic.PARENT_OF[leaf] for leaf in leaves}
        assert 1 <= len(plan.events) <= 3 and 0.3 <= plan.seconds <= 10.0
    train = {plan.uploader for plan in plans if plan.split == "train"}
    val = {plan.uploader for plan in plans if plan.split == "val"}
    evaluation = {plan.uploader for plan in plans if plan.split == "eval"}
    assert val and train and not train & val and not evaluation & (train | val)
    assert {plan.sample_rate for plan in plans} > {44100} and any(plan.channels == 2 for plan in plans)
    assert sum(plan.split == "eval" for plan in plans) == 80


def test_written_audio_matches_its_plan(synthetic_root):
    config = synthetic.SyntheticConfig(clips=60, seed=7)
    plan = synthetic.plan_clip(5, config)
    audio, rate = soundfile.read(synthetic.audio_path(synthetic_root, plan, config), always_2d=True)
    info = soundfile.info(synthetic.audio_path(synthetic_root, plan, config))
    assert info.subtype == "PCM_16" and rate == plan.sample_rate and audio.shape[1] == plan.channels
    assert audio.shape[0] == int(plan.seconds * rate)
    assert 0.14 < np.abs(audio).max() < 0.91  # peak 0.3-0.9 times the uploader's gain (-6 to 0 dB)


@pytest.mark.parametrize("label", synthetic.LEAVES)
def test_every_class_renders_a_finite_non_silent_sound(label):
    rng = np.random.default_rng(0)
    sound = synthetic.RENDERERS[label](rng, 22050, 44100)
    assert sound.shape == (22050,) and np.all(np.isfinite(sound)) and np.abs(sound).max() > 0


@pytest.mark.parametrize("clips", [0, 49, 100_001])
def test_clip_count_outside_range_fails_before_work(clips, tmp_path):
    with pytest.raises(ValueError, match="--clips must be between 50 and 100000"):
        synthetic.generate(str(tmp_path / "x"), clips=clips, seed=0)
    assert not (tmp_path / "x").exists()


def test_uploaders_specialise_and_colour_their_recordings():
    config = synthetic.SyntheticConfig(clips=2000, seed=5)
    plans = [synthetic.plan_clip(i, config) for i in range(1000)]
    in_specialty = [event.label in synthetic.uploader_profile(plan.uploader, 5, synthetic.LEAVES).specialties
                    for plan in plans for event in plan.events]
    assert 0.83 < np.mean(in_specialty) < 0.93  # 0.85 by choice, plus chance picks of a specialty
    first, second = (synthetic.uploader_profile(name, 5, synthetic.LEAVES) for name in ("user00001", "user00002"))
    freqs = np.array([100.0, 1000.0, 8000.0])
    assert not np.allclose(synthetic.colouration(first, freqs), synthetic.colouration(second, freqs))


@pytest.mark.parametrize("dataset_format", sorted(synthetic.FORMATS))
def test_every_format_is_read_back_by_its_adapter(dataset_format, tmp_path):
    from beam_jobs.ingest import ingest

    root = synthetic.generate(str(tmp_path / "data"), clips=50, seed=2, dataset_format=dataset_format)
    manifest = ingest(root, str(tmp_path / "manifest"), dataset_format)
    with open(os.path.join(root, synthetic.TRUTH_FILE)) as handle:
        truth = {entry["fname"]: entry for entry in map(json.loads, handle)}
    assert len(manifest.rows) == len(truth) == 50
    for row in manifest.rows:
        entry = truth[row.clip_id.rsplit("/", 1)[-1]]
        assert list(row.labels) == entry["labels"] and os.path.exists(row.audio_path)


def test_label_noise_and_missing_positives_follow_the_config():
    noisy = synthetic.SyntheticConfig(format="fsdnoisy18k", clips=3000, seed=1, label_noise=0.4, out_of_vocabulary=0.5)
    plans = [synthetic.plan_clip(i, noisy) for i in range(3000)]
    unverified = [plan for plan in plans if plan.split == "train" and not dict(plan.flags)["manually_verified"]]
    wrong = [plan for plan in unverified if plan.labels != plan.true_labels]
    assert abs(len(wrong) / len(unverified) - 0.4) < 0.04
    assert all(plan.noise in ("in_vocabulary", "out_of_vocabulary") for plan in wrong)
    assert all(plan.labels == plan.true_labels for plan in plans if plan.split == "test")
    assert not {label for plan in plans for label in plan.labels} & set(synthetic.OUT_OF_VOCABULARY)
    audioset = synthetic.SyntheticConfig(format="audioset", clips=2000, seed=1, missing_positives=0.3)
    plans = [synthetic.plan_clip(i, audioset) for i in range(2000)]
    train = [plan for plan in plans if plan.split == "train"]
    kept = sum(len(plan.labels) for plan in train) / sum(len(plan.true_labels) for plan in train)
    assert 0.65 < kept < 0.78  # 70% kept, and never a clip left without a positive
    assert all(set(plan.labels) <= set(plan.true_labels) and not set(plan.negatives) & set(plan.true_labels)
               for plan in plans)
    assert all(len(plan.labels) + len(plan.negatives) == len(synthetic.VOCABULARY)
               for plan in plans if plan.split == "eval")


def test_an_uploaders_specialty_events_repeat_one_source_instance():
    config = synthetic.SyntheticConfig(clips=200, seed=4)
    first, second = (synthetic.uploader_profile(name, 4, synthetic.LEAVES) for name in ("user00001", "user00002"))
    label = first.specialties[0]
    again = synthetic.RENDERERS[label](synthetic.event_source(config, first, label, None), 4410, 44100)
    np.testing.assert_array_equal(
        synthetic.RENDERERS[label](synthetic.event_source(config, first, label, None), 4410, 44100), again)
    other = synthetic.RENDERERS[label](synthetic.event_source(config, second, label, np.random.default_rng(0)),
                                       4410, 44100)
    assert not np.allclose(other, again)
    fresh = np.random.default_rng(1)
    assert synthetic.event_source(config, first, next(l for l in synthetic.LEAVES if l not in first.specialties),
                                  fresh) is fresh
