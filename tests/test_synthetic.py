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
    plans = [synthetic.plan_clip(i, 400, 3) for i in range(400)]
    for plan in plans:
        leaves = {event.label for event in plan.events}
        assert set(plan.labels) == leaves | {synthetic.PARENT_OF[leaf] for leaf in leaves}
        assert 1 <= len(plan.events) <= 3 and 0.3 <= plan.seconds <= 10.0
    train = {plan.uploader for plan in plans if plan.split == "train"}
    val = {plan.uploader for plan in plans if plan.split == "val"}
    assert val and train and not train & val
    assert {plan.sample_rate for plan in plans} > {44100} and any(plan.channels == 2 for plan in plans)
    assert sum(plan.split == "eval" for plan in plans) == 80


def test_written_audio_matches_its_plan(synthetic_root):
    plan = synthetic.plan_clip(5, 60, 7)
    audio, rate = soundfile.read(synthetic.audio_path(synthetic_root, plan), always_2d=True)
    info = soundfile.info(synthetic.audio_path(synthetic_root, plan))
    assert info.subtype == "PCM_16" and rate == plan.sample_rate and audio.shape[1] == plan.channels
    assert audio.shape[0] == int(plan.seconds * rate)
    assert 0.29 < np.abs(audio).max() < 0.91


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
