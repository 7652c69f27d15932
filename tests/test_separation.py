"""MixIT separation, separated channels (Beam) and the SM / CP proxy tasks (methods.md section 8)."""
import dataclasses
import glob
import itertools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.contracts import features as feature_functions
from beam_jobs import synthetic
from beam_jobs.contracts import schema
from beam_jobs.extract import extract
from beam_jobs.contracts.manifest import Manifest, read_manifest, write_manifest
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.feature_set import read_separation
from beam_jobs.separate import SeparationSpec
from beam_jobs.contracts.feature_set import load_feature_set, shard_pattern
from keras_models import separation, separation_ssl
from keras_models.model_folder import load_encoder
from keras_models.losses import LossParams
from keras_models.train import TrainParams, train_classifier

TINY_SEPARATOR = separation.SeparatorParams(channels=3, hidden=16, blocks=1, segment_seconds=0.5, batch_size=2,
                                            steps=4, checkpoint_steps=(2, 4))


def brute_force_mixit(references, estimates, snr_max=30.0):
    """Loop over every assignment of channels to the two references (float64)."""
    tau = 10 ** (-snr_max / 10)
    best, best_assignment = np.inf, None
    for assignment in itertools.product([0, 1], repeat=len(estimates)):
        total = 0.0
        for n, reference in enumerate(references):
            remix = sum((estimates[m] for m in range(len(estimates)) if assignment[m] == n),
                        np.zeros_like(reference))
            error = np.sum((reference - remix) ** 2)
            energy = np.sum(reference**2)
            total += -10 * np.log10(energy / (error + tau * energy))
        if total < best:
            best, best_assignment = total, assignment
    return best, best_assignment


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_mixit_loss_is_the_best_assignment_found_by_brute_force(channels):
    rng = np.random.default_rng(channels)
    references = rng.normal(size=(5, 2, 400))
    estimates = rng.normal(size=(5, channels, 400))
    # Some examples close to a known split, so that the best assignment is not the trivial one.
    for example in range(3):
        weights = rng.dirichlet(np.ones(channels), size=2)
        estimates[example] = weights.T @ references[example] + 0.05 * rng.normal(size=(channels, 400))
    got = np.asarray(separation.mixit_loss(references.astype("float32"), estimates.astype("float32")))
    per_assignment = np.asarray(separation.mixit_assignment_losses(references.astype("float32"),
                                                                   estimates.astype("float32")))
    for example in range(5):
        expected, assignment = brute_force_mixit(references[example], estimates[example])
        assert got[example] == pytest.approx(expected, abs=2e-3)
        index = int(sum(bit << m for m, bit in enumerate(assignment)))
        assert per_assignment[example].argmin() == index


def test_assignment_matrices_send_every_channel_to_exactly_one_reference():
    matrices = separation.assignment_matrices(4)
    assert matrices.shape == (16, 2, 4)
    np.testing.assert_array_equal(matrices.sum(axis=1), np.ones((16, 4)))
    assert len({matrix.tobytes() for matrix in matrices}) == 16


def test_a_perfect_separation_reaches_the_snr_ceiling():
    rng = np.random.default_rng(0)
    references = rng.normal(size=(1, 2, 300)).astype("float32")
    estimates = np.concatenate([references, np.zeros((1, 2, 300), "float32")], axis=1)  # 2 silent channels
    assert float(separation.mixit_loss(references, estimates, snr_max=30.0)[0]) == pytest.approx(-60.0, abs=0.05)


def test_si_snr_is_scale_invariant_and_matches_the_definition():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=2000)
    reference -= reference.mean()
    noise = rng.normal(size=2000)
    noise -= noise.mean()
    noise -= (noise @ reference) / (reference @ reference) * reference  # orthogonal to the reference
    noise *= np.sqrt((reference @ reference) / (noise @ noise)) / 10  # 20 dB below
    assert separation.si_snr(reference, reference + noise) == pytest.approx(20.0, abs=1e-6)
    assert separation.si_snr(reference, -3.5 * (reference + noise)) == pytest.approx(20.0, abs=1e-6)


def test_si_snr_improvement_pairs_each_source_with_its_own_channel():
    rng = np.random.default_rng(2)
    sources = rng.normal(size=(3, 1000))
    mixture = sources.sum(axis=0)
    channels = np.stack([sources[2], np.zeros(1000) + 1e-3 * rng.normal(size=1000), sources[0], sources[1]])
    improvement = separation.si_snr_improvement(sources, channels)
    baseline = np.array([separation.si_snr(source, mixture) for source in sources])
    assert np.all(improvement > 60 - baseline - 1)  # perfect channels: only the 1e-12 floor limits them
    untouched = separation.si_snr_improvement(sources, np.stack([mixture / 4] * 4))
    np.testing.assert_allclose(untouched, 0.0, atol=1e-9)  # a scaled mixture improves nothing
    with pytest.raises(ValueError, match="only 2 channels"):
        separation.si_snr_improvement(sources, channels[:2])


@pytest.mark.parametrize("samples", [1000, 4097])
def test_separator_channels_sum_to_the_input(samples):
    separator = separation.build_separator(TINY_SEPARATOR)
    waveform = np.random.default_rng(3).normal(size=(2, samples)).astype("float32") * 0.1
    channels = np.asarray(separator(waveform))
    assert channels.shape == (2, 3, samples)
    np.testing.assert_allclose(channels.sum(axis=1), waveform, atol=1e-5)


def test_separator_params_are_checked_before_training():
    with pytest.raises(ValueError, match="checkpoint_steps"):
        separation.SeparatorParams(steps=100, checkpoint_steps=(50, 200))
    with pytest.raises(ValueError, match="channels"):
        separation.SeparatorParams(channels=1)


def test_synthetic_sources_sum_to_the_rendered_clip():
    config = synthetic.SyntheticConfig(clips=60, seed=5)
    for index in range(6):
        plan = synthetic.plan_clip(index, config)
        mixture, sources = synthetic.render_sources(plan, config)
        assert len(sources) == 1 + len(plan.events)
        np.testing.assert_allclose(sources.sum(axis=0), mixture, atol=1e-12)
        np.testing.assert_allclose(mixture, synthetic.render_clip(plan, config)[:, 0], atol=1e-6)


def test_unreadable_clips_are_skipped_until_too_few_are_left_to_mix(manifest_dir, tmp_path):
    manifest = read_manifest(manifest_dir)
    rows = [row for row in manifest.rows if row.split == "train"][:4]
    rows = [dataclasses.replace(row, audio_path=str(tmp_path / f"missing{i}.wav")) if i < 3 else row
            for i, row in enumerate(rows)]
    write_manifest(str(tmp_path / "manifest"), Manifest(rows=tuple(rows), vocabulary=manifest.vocabulary, source={}))
    waveforms = separation.ManifestWaveforms(str(tmp_path / "manifest"), "train", 22050)
    assert waveforms.read(3) is not None and waveforms.read(0) is None and waveforms.read(1) is None
    assert "missing0.wav" in waveforms.skipped[rows[0].clip_id]
    with pytest.raises(ValueError, match="3 of 4 clips unreadable"):
        waveforms.read(2)


@pytest.fixture(scope="module")
def separator_dir(manifest_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("separator"))
    waveforms = separation.ManifestWaveforms(manifest_dir, "train", TINY_SEPARATOR.sample_rate)
    summary = separation.train_separator(waveforms, directory, TINY_SEPARATOR, log_every=2)
    assert summary["steps"] == 4 and summary["skipped_clips"] == 0
    return directory


def test_training_saves_a_checkpoint_at_every_requested_step(separator_dir):
    files = sorted(os.path.basename(path) for path in glob.glob(f"{separator_dir}/checkpoints/*.weights.h5"))
    assert files == ["step-000002.weights.h5", "step-000004.weights.h5"]
    first, last = separation.load_separator(separator_dir, 2), separation.load_separator(separator_dir, 4)
    assert any(not np.allclose(a, b) for a, b in zip(first.get_weights(), last.get_weights()))
    with pytest.raises(ValueError, match="no checkpoint at step 3"):
        separation.load_separator(separator_dir, 3)


def test_mixit_training_improves_separation_of_known_sources(manifest_dir, tmp_path):
    params = dataclasses.replace(TINY_SEPARATOR, channels=4, hidden=32, steps=60, checkpoint_steps=(60,),
                                 batch_size=4, learning_rate=3e-3)
    waveforms = separation.ManifestWaveforms(manifest_dir, "train", params.sample_rate)
    summary = separation.train_separator(waveforms, str(tmp_path), params, log_every=20)
    assert summary["final_loss"] < summary["first_loss"]
    rows = separation.evaluate_separation(str(tmp_path), synthetic.known_source_mixtures(12, params.sample_rate))
    assert [row["step"] for row in rows] == [0, 60]
    assert rows[1]["mean_si_snri"] > rows[0]["mean_si_snri"] + 1.0  # dB over the untrained network
    assert rows[0]["sources"] == rows[1]["sources"] >= 24
    assert "| 0 (untrained) |" in separation.separation_markdown(rows, summary)


@pytest.fixture(scope="module")
def views_dir(manifest_dir, separator_dir, tmp_path_factory):
    """Separated views of the small FSD50K-format set, one clip replaced by a corrupt file."""
    base = tmp_path_factory.mktemp("views")
    manifest = read_manifest(manifest_dir)
    corrupt = base / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEfmt broken")
    rows = list(manifest.rows)
    first_train = next(index for index, row in enumerate(rows) if row.split == "train")
    rows[first_train] = dataclasses.replace(rows[first_train], audio_path=str(corrupt))
    write_manifest(str(base / "manifest"), Manifest(rows=tuple(rows), vocabulary=manifest.vocabulary, source={}))
    directory = str(base / "views")
    extract(str(base / "manifest"), directory, FeatureParams(whole_clips=True),
            separation=SeparationSpec(separator_dir, (2, 4)), splits=("train",))
    return directory


def read_clips(directory, split="train"):
    examples = []
    for path in sorted(glob.glob(shard_pattern(directory, split))):
        examples += [schema.decode_patch(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    return {example[schema.CLIP_ID]: example for example in examples}


def test_views_hold_the_log_mels_of_each_checkpoints_channels(manifest_dir, separator_dir, views_dir):
    assert read_separation(views_dir) == {"separator_dir": separator_dir, "steps": [2, 4], "channels": 3}
    clips = read_clips(views_dir)
    rows = {row.clip_id: row for row in read_manifest(manifest_dir).rows}
    params = FeatureParams(whole_clips=True)
    clip_id = sorted(clips)[1]
    example = clips[clip_id]
    assert example[schema.CHANNELS].shape == (2, 3, *example[schema.LOGMEL].shape)
    waveform, rate = feature_functions.decode_clip(rows[clip_id].audio_path)
    waveform = feature_functions.prepare_waveform(waveform, rate, params)
    for index, step in enumerate((2, 4)):
        channels = separation.separate(separation.load_separator(separator_dir, step), waveform)
        for channel in range(3):
            expected = feature_functions.log_mel_spectrogram(channels[channel], params)
            np.testing.assert_allclose(example[schema.CHANNELS][index, channel], expected, atol=1e-3)
    np.testing.assert_allclose(example[schema.LOGMEL], feature_functions.log_mel_spectrogram(waveform, params),
                               atol=1e-4)


def test_views_account_for_every_train_clip_and_dead_letter_the_corrupt_one(manifest_dir, views_dir):
    counts = json.loads(open(os.path.join(views_dir, "counts.json")).read())
    assert set(counts) == {"train"}  # only the split that pretraining reads
    assert counts["train"]["read"] == sum(row.split == "train" for row in read_manifest(manifest_dir).rows)
    assert sum(split["rejected"] for split in counts.values()) == 1
    for split in counts.values():
        assert split["read"] == split["written"] + split["rejected"]
    letters = [json.loads(line) for line in open(os.path.join(views_dir, "dead_letters.jsonl"))]
    assert len(letters) == 1 and letters[0]["path"].endswith("corrupt.wav") and "cannot decode" in letters[0]["reason"]


def test_a_bad_separation_spec_fails_before_any_work(manifest_dir, separator_dir, tmp_path):
    with pytest.raises(ValueError, match=r"steps \[3\]"):
        extract(manifest_dir, str(tmp_path / "a"), FeatureParams(whole_clips=True),
                separation=SeparationSpec(separator_dir, (3,)))
    with pytest.raises(ValueError, match="whole-clip"):
        extract(manifest_dir, str(tmp_path / "b"), FeatureParams(), separation=SeparationSpec(separator_dir, (2,)))
    with pytest.raises(ValueError, match=r"no split \['training'\]"):
        extract(manifest_dir, str(tmp_path / "d"), FeatureParams(whole_clips=True),
                separation=SeparationSpec(separator_dir, (2,)), splits=("training",))
    with pytest.raises(ValueError, match="Hz"):
        extract(manifest_dir, str(tmp_path / "c"), FeatureParams(whole_clips=True, sample_rate=16000, fmax=8000.0),
                separation=SeparationSpec(separator_dir, (2,)))
    assert not glob.glob(str(tmp_path / "*" / "*.tfrecord"))


def windows_of(clip: np.ndarray, view: np.ndarray) -> bool:
    frames = len(view)
    return any(np.allclose(clip[start:start + frames], view, atol=1e-5) for start in range(len(clip) - frames + 1))


@pytest.mark.parametrize("view, checkpoints, allowed", [("channel", (-1,), [1]), ("channel", (), [0, 1]),
                                                        ("channel", (2,), [0]), ("mixture", (), [])])
def test_second_view_is_a_window_of_an_allowed_checkpoints_channel(views_dir, view, checkpoints, allowed):
    features = load_feature_set(views_dir)
    params = separation_ssl.SeparationSSLParams(view=view, checkpoints=checkpoints, specaugment=False, batch_size=4)
    clips = read_clips(views_dir)
    normalised = {clip_id: {"mixture": (example[schema.LOGMEL] - features.mean) / features.std,
                            "channels": (example[schema.CHANNELS] - features.mean) / features.std}
                  for clip_id, example in clips.items()}
    (first, second), _ = next(iter(separation_ssl.separated_views(features, "train", params)))
    used = set()
    for view_a, view_b in zip(first.numpy(), second.numpy()):
        owner = next(clip_id for clip_id, clip in normalised.items() if windows_of(clip["mixture"], view_a))
        clip = normalised[owner]
        if view == "mixture":
            assert windows_of(clip["mixture"], view_b)
            continue
        matches = [(k, m) for k in range(2) for m in range(3) if windows_of(clip["channels"][k, m], view_b)]
        assert matches and all(k in allowed for k, _ in matches)
        used.update(k for k, _ in matches)
    assert used <= set(allowed)


def test_unknown_checkpoints_and_settings_are_rejected(views_dir):
    features = load_feature_set(views_dir)
    with pytest.raises(ValueError, match="not among the separated channels' steps"):
        separation_ssl.separated_views(features, "train", separation_ssl.SeparationSSLParams(checkpoints=(7,),
                                                                                              batch_size=4))
    with pytest.raises(ValueError, match="proxy_tasks"):
        separation_ssl.SeparationSSLParams(proxy_tasks="both")


def test_pipeline_settings_are_checked_against_the_separator_checkpoints():
    from pipelines.separation_ssl import SETTINGS

    separation_ssl.validate_settings(SETTINGS, [500, 1000, 2000, 4000])
    with pytest.raises(ValueError, match="'or_500': separator checkpoint 500 not among"):
        separation_ssl.validate_settings([{"name": "or_500", "proxy_tasks": "sm", "view": "channel",
                                           "checkpoints": [500]}], [250, 1000])
    with pytest.raises(ValueError, match=r"'x': .*proxy_tasks 'sm\+xx'"):
        separation_ssl.validate_settings([{"name": "x", "proxy_tasks": "sm+xx", "view": "channel"}], [10])
    with pytest.raises(ValueError, match="unique names"):
        separation_ssl.validate_settings([SETTINGS[0], SETTINGS[0]], [10])


def test_coincidence_loss_and_accuracy_by_hand():
    logits = np.array([[2.0, -1.0], [-0.5, 0.5]], dtype="float32")
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731  BCE with logits: target 1 -> softplus(-x), 0 -> softplus(x)
    expected = [(softplus(-2.0) + softplus(-1.0)) / 2, (softplus(0.5) + softplus(0.5)) / 2]
    np.testing.assert_allclose(np.asarray(separation_ssl.coincidence_loss(logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(separation_ssl.coincidence_accuracy(None, logits)), [1.0, 0.0])


def test_coincidence_negatives_pair_each_view_with_the_next_examples_second_view():
    encoder = keras.Sequential([keras.Input((4, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])
    head = separation_ssl.coincidence_head(5, hidden=8)
    model = separation_ssl.pretraining_model(encoder, None, head)
    rng = np.random.default_rng(4)
    first, second = rng.normal(size=(3, 4, 3)).astype("float32"), rng.normal(size=(3, 4, 3)).astype("float32")
    outputs = model([first, second])
    assert set(outputs) == {"coincidence"}
    h_a, h_b = np.asarray(encoder(first)), np.asarray(encoder(second))
    positive = np.asarray(head(np.concatenate([h_a, h_b], axis=1)))[:, 0]
    negative = np.asarray(head(np.concatenate([h_a, np.roll(h_b, 1, axis=0)], axis=1)))[:, 0]
    np.testing.assert_allclose(np.asarray(outputs["coincidence"]), np.stack([positive, negative], axis=1), rtol=1e-5)


@pytest.mark.parametrize("proxy_tasks", ["sm", "cp", "sm+cp"])
def test_pretraining_writes_an_encoder_for_each_proxy_task_setting(views_dir, tmp_path, proxy_tasks):
    params = separation_ssl.SeparationSSLParams(proxy_tasks=proxy_tasks, architecture="vgg_like", width=0.125,
                                                epochs=1, batch_size=8, head_units=16)
    summary = separation_ssl.pretrain_separation_ssl(views_dir, str(tmp_path), params)
    assert np.isfinite(summary["final_loss"])
    assert ("coincidence_accuracy" in summary) == ("cp" in proxy_tasks)
    assert ("similarity_loss" in summary) == (proxy_tasks == "sm+cp")
    assert load_encoder(str(tmp_path)).output_shape[-1] == summary["embedding_dim"]
    assert json.loads((tmp_path / separation_ssl.PARAMS_FILE).read_text())["proxy_tasks"] == proxy_tasks


def test_shallow_classifier_trains_a_hidden_layer_on_the_frozen_encoder(views_dir, features_dir, tmp_path):
    encoder_dir = str(tmp_path / "encoder")
    separation_ssl.pretrain_separation_ssl(views_dir, encoder_dir, separation_ssl.SeparationSSLParams(
        architecture="vgg_like", width=0.125, epochs=1, batch_size=8, head_units=16))
    before = load_encoder(encoder_dir).get_weights()
    model_dir = str(tmp_path / "shallow")
    train_classifier(features_dir, model_dir, TrainParams(epochs=1, batch_size=16, loss=LossParams("bce"),
                                                          head_hidden_units=12),
                     initial_encoder_dir=encoder_dir, freeze_encoder=True)
    model = keras.models.load_model(f"{model_dir}/model.keras")
    assert model.get_layer("hidden").units == 12
    for old, new in zip(before, model.get_weights()[:len(before)]):
        np.testing.assert_array_equal(old, new)


class _Preempted(Exception):
    pass


def test_an_interrupted_separator_training_resumes_after_its_last_finished_steps(manifest_dir, tmp_path):
    from beam_jobs.contracts.model_folder import read_history

    params = dataclasses.replace(TINY_SEPARATOR, steps=6, checkpoint_steps=(2, 6))
    waveforms = separation.ManifestWaveforms(manifest_dir, "train", params.sample_rate)
    preempt = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (_ for _ in ()).throw(_Preempted())
                                             if epoch == 1 else None)
    with pytest.raises(_Preempted):  # killed after 4 of 6 steps (two epochs of log_every = 2)
        separation.train_separator(waveforms, str(tmp_path), params, log_every=2, extra_callbacks=(preempt,))
    epochs_run = []
    counter = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch))
    summary = separation.train_separator(waveforms, str(tmp_path), params, log_every=2, extra_callbacks=(counter,))
    assert epochs_run == [2]  # only the last two steps are trained again
    assert [entry["epoch"] for entry in read_history(str(tmp_path))] == [1, 2, 3] and summary["steps"] == 6
    files = sorted(os.path.basename(path) for path in glob.glob(f"{tmp_path}/checkpoints/*.weights.h5"))
    assert files == ["step-000002.weights.h5", "step-000006.weights.h5"]  # step 6 counted across the resume
    assert not os.path.exists(tmp_path / separation.BACKUP_DIR)
