"""Export, tagging and the HEAR API: the exported model computes what the pipeline computes."""
import csv
import dataclasses
import io
import json

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from beam_jobs.contracts import score_table
from beam_jobs.contracts.features import cut_patches, decode_clip, log_mel_spectrogram, resample, waveform_to_log_mel
from beam_jobs.contracts.manifest import read_manifest
from beam_jobs.contracts.params import FeatureParams
from keras_models import export, hear, tag
from keras_models.evaluate import predict_split


def real_rate_clip(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A tone sweep over noise at a recording's level, with a silent gap (log-mel values near the floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    clip = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.05 * rng.standard_normal(len(t))
    clip[len(t) // 3: len(t) // 2] = 0.0
    return clip.astype(np.float32)


@pytest.mark.parametrize("params", [FeatureParams(), FeatureParams.fsdnoisy18k()], ids=["fsd50k", "fsdnoisy18k"])
def test_front_end_matches_the_feature_job(params):
    for seconds in (0.37, 1.0, 2.9):
        clip = real_rate_clip(params.sample_rate, seconds)
        expected = log_mel_spectrogram(clip, params)
        computed = export.tf_log_mel(tf.constant(clip[None]), params).numpy()[0]
        assert computed.shape == expected.shape
        assert np.max(np.abs(computed - expected)) < 2e-3


def test_front_end_patches_short_and_long_clips_as_extraction_does():
    params = FeatureParams()
    mean, std = np.linspace(-5, 1, params.n_mels), np.linspace(1, 3, params.n_mels)
    layer = export.WaveformPatches(dataclasses.asdict(params))
    layer.set_weights([mean, std])
    for seconds in (0.2, 3.3):  # shorter than a patch (repeated), several patches
        clip = real_rate_clip(params.sample_rate, seconds, seed=1)
        expected = (cut_patches(waveform_to_log_mel(clip, params.sample_rate, params), params) - mean) / std
        patches, starts = layer(tf.constant(clip[None]))
        assert patches.shape == expected.shape
        assert np.max(np.abs(patches.numpy() - expected)) < 2e-3
        hop_seconds = params.patch_hop_frames * params.hop_length / params.sample_rate
        np.testing.assert_allclose(starts.numpy()[0], np.arange(len(expected)) * hop_seconds, rtol=1e-6)


@pytest.fixture(scope="module")
def model_dir(tiny_classifier_dir):
    return tiny_classifier_dir


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("exported"))
    export.export(model_dir, directory, tflite=True)
    return directory


def eval_audio(manifest_dir, clips=6):
    rows = [row for row in read_manifest(manifest_dir).rows if row.split == "eval"][:clips]
    return [(row.clip_id, row.audio_path) for row in rows]


def test_exported_model_gives_the_evaluation_scores(model_dir, export_dir, features_dir, manifest_dir):
    clip_ids, scores, _, vocabulary = predict_split(model_dir, features_dir, "eval")
    expected = dict(zip(clip_ids, scores))
    tagger = export.Tagger(export_dir)
    assert tagger.vocabulary == vocabulary
    interpreter = tf.lite.Interpreter(model_path=f"{export_dir}/{export.TFLITE_FILE}")
    serve_lite = interpreter.get_signature_runner("serving_default")
    for clip_id, path in eval_audio(manifest_dir):
        waveform, rate = decode_clip(path)
        waveform = resample(waveform, rate, tagger.sample_rate)
        outputs = tagger(waveform)
        assert np.max(np.abs(outputs["clip_scores"] - expected[clip_id])) < 1e-4
        assert outputs["embedding"].shape == (len(outputs["patch_scores"]), tagger.embedding_size)
        lite = serve_lite(waveform=waveform[None].astype(np.float32))
        assert np.max(np.abs(lite["clip_scores"][0] - expected[clip_id])) < 1e-3
    reloaded = tf.keras.models.load_model(f"{export_dir}/{export.KERAS_FILE}")
    first = resample(*decode_clip(eval_audio(manifest_dir)[0][1]), tagger.sample_rate)
    np.testing.assert_allclose(reloaded(first[None])["clip_scores"].numpy()[0], tagger(first)["clip_scores"], atol=1e-5)


def test_tagging_writes_the_score_table_and_rejects_bad_files(export_dir, model_dir, manifest_dir, tmp_path):
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    clips = eval_audio(manifest_dir, clips=3)
    for index, (_, path) in enumerate(clips):
        waveform, rate = decode_clip(path)
        stereo = np.stack([waveform, 0.5 * waveform], axis=1)
        soundfile.write(str(folder / "sub" / f"clip, {index}.flac"), stereo, rate)  # a comma in the name
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    (folder / "notes.txt").write_text("not audio, not listed")
    output = tmp_path / "scores.csv"
    result = tag.tag(export_dir, [str(folder)], str(output), top_k=2, timestamps=True)
    assert sorted(result["rejected"]) == [str(folder / "broken.wav")]
    lines = output.read_text().splitlines()
    assert lines[0] == score_table.header(export.Tagger(export_dir).vocabulary)
    table = dict(score_table.parse_row(line) for line in lines[1:])
    assert sorted(table) == sorted(str(folder / "sub" / f"clip, {index}.flac") for index in range(3))
    direct = tag.tag(model_dir, [str(folder / "sub" / "clip, 0.flac")])  # the model folder, without an export
    np.testing.assert_allclose(table[str(folder / "sub" / "clip, 0.flac")],
                               direct["tagged"][str(folder / "sub" / "clip, 0.flac")], atol=1e-5)
    rejected = list(csv.reader(io.StringIO((tmp_path / f"scores.csv{tag.REJECTED_SUFFIX}").read_text())))
    assert rejected[0] == ["path", "reason"] and rejected[1][0] == str(folder / "broken.wav")
    patches = list(csv.reader(io.StringIO((tmp_path / f"scores.csv{tag.PATCHES_SUFFIX}").read_text())))
    assert patches[0][:3] == ["clip_id", "start", "end"]
    assert float(patches[1][2]) - float(patches[1][1]) == pytest.approx(1.0, abs=0.02)  # 1 s patches
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        tag.tag(export_dir, [str(tmp_path / "empty")])
    missing = tag.tag(export_dir, [str(tmp_path / "missing.wav"), str(folder / "sub")])
    assert "file not found" in missing["rejected"][str(tmp_path / "missing.wav")] and len(missing["tagged"]) == 3
    assert tag.main(["--model", export_dir, str(folder / "broken.wav")]) == 1  # nothing tagged: non-zero


def test_hear_api_rules(export_dir):
    model = hear.load_model(export_dir)
    assert isinstance(model, tf.Module) and model.sample_rate == 22050
    assert model.scene_embedding_size == model.timestamp_embedding_size > 0
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((3, int(2.2 * model.sample_rate)))).astype(np.float32)
    embeddings, timestamps = hear.get_timestamp_embeddings(tf.constant(audio), model)
    assert embeddings.dtype == tf.float32 and timestamps.dtype == tf.float32
    assert embeddings.shape[:2] == timestamps.shape and embeddings.shape[0] == 3
    assert embeddings.shape[2] == model.timestamp_embedding_size
    np.testing.assert_allclose(np.diff(timestamps.numpy(), axis=1), 1000 * 5 * 220 / 22050, rtol=1e-5)  # ~50 ms
    first_centre_ms = 1000 * (101 - 1) * 220 / 2 / 22050  # the first patch's centre (101 frames, 10 ms hop)
    assert timestamps.numpy()[0, 0] == pytest.approx(first_centre_ms, abs=1e-3)
    assert embeddings.shape[1] == (1 + len(audio[0]) // 220 - 101) // 5 + 1
    at_training_hop = model.tagger.embed(audio, 50)  # the embed signature at the serving signature's hop
    np.testing.assert_allclose(at_training_hop["embedding"], model.tagger(audio)["embedding"], atol=1e-5)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == tf.float32
    alone = hear.get_scene_embeddings(audio[1:2], model)  # batch independence
    np.testing.assert_allclose(alone.numpy()[0], scene.numpy()[1], atol=1e-5)
    np.testing.assert_array_equal(hear.get_scene_embeddings(audio, model).numpy(), scene.numpy())  # deterministic
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(audio[0], model)


def test_the_tagging_job_writes_what_the_command_line_tagger_does(export_dir, manifest_dir, tmp_path):
    from beam_jobs import tag as tag_job

    folder = tmp_path / "recordings"
    folder.mkdir()
    for index, (_, path) in enumerate(eval_audio(manifest_dir, clips=4)):
        waveform, rate = decode_clip(path)
        soundfile.write(str(folder / f"clip {index}.wav"), waveform, rate)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    expected = tag.tag(export_dir, [str(folder)])
    summary = tag_job.tag_audio(export_dir, str(tmp_path / "job"), [str(folder)], timestamps=True)
    assert (summary["files"], summary["tagged"], summary["rejected"]) == (5, 4, 1)
    lines = [line for path in sorted((tmp_path / "job").glob("scores-*.csv")) for line in path.read_text().splitlines()]
    table = dict(score_table.parse_row(line) for line in lines if not line.startswith("clip_id,"))
    assert sorted(table) == sorted(expected["tagged"])
    for path, scores in expected["tagged"].items():
        np.testing.assert_allclose(table[path], scores, atol=1e-5)
    rejected = [json.loads(line) for line in (tmp_path / "job" / tag_job.REJECTED_FILE).read_text().splitlines()]
    assert [entry["path"] for entry in rejected] == [str(folder / "broken.wav")] and rejected[0]["reason"]
    assert list((tmp_path / "job").glob("patches-*.csv"))
    by_manifest = tag_job.tag_audio(export_dir, str(tmp_path / "by_manifest"), manifest_dir=manifest_dir)
    assert by_manifest["tagged"] == by_manifest["files"] == len(read_manifest(manifest_dir).rows)
    with pytest.raises(RuntimeError, match="none of the 1 files could be tagged"):
        tag_job.tag_audio(export_dir, str(tmp_path / "nothing"), [str(folder / "broken.wav")])


def test_an_encoder_exports_to_embeddings_for_hear_and_cannot_tag(features_dir, tmp_path):
    from beam_jobs.contracts.model_folder import copy_feature_set_files
    from keras_models.architectures import build_encoder
    from keras_models.model_folder import save_encoder

    encoder_dir, exported = str(tmp_path / "encoder"), str(tmp_path / "exported")
    encoder = build_encoder("vgg_like", (101, 96), width=0.125)
    copy_feature_set_files(features_dir, encoder_dir)
    save_encoder(encoder, encoder_dir, "vgg_like", 0.125)
    description = export.export(encoder_dir, exported)
    assert description["vocabulary"] == [] and description["outputs"] == ["embedding", "patch_starts"]
    model = hear.load_model(exported)
    audio = np.zeros((2, 35000), dtype=np.float32)  # 160 frames: two patches at the 0.5 s hop, 12 at 50 ms
    audio[0, ::100] = 0.5
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 12, encoder.output_shape[-1]) and timestamps.shape == (2, 12)
    patches = export.WaveformPatches(description["feature_params"])
    source = export.read_model_folder(encoder_dir)
    patches.set_weights([source.mean, source.std])
    expected = encoder(patches(tf.constant(audio[:1]))[0]).numpy().mean(axis=0)  # two patches at the 0.5 s hop
    np.testing.assert_allclose(hear.get_scene_embeddings(audio, model).numpy()[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="is an encoder"):
        tag.tag(exported, [str(tmp_path)])


def test_a_changed_or_half_written_export_is_refused_and_a_rerun_replaces_it(export_dir, model_dir, tmp_path):
    import shutil

    from beam_jobs.contracts.publish import IncompleteOutputError

    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    assert export.Tagger(str(copy)).vocabulary  # a whole copy reads
    description = copy / export.EXPORT_FILE
    description.write_text(description.read_text().replace('"aggregation": "mean"', '"aggregation": "geometric_mean"'))
    with pytest.raises(IncompleteOutputError, match="another size"):
        export.Tagger(str(copy))
    (copy / export.KERAS_FILE).unlink()
    with pytest.raises(IncompleteOutputError, match="missing files"):
        tag.tag(str(copy), [str(tmp_path)])
    export.export(model_dir, str(copy))  # exporting again into the folder replaces it whole
    assert export.Tagger(str(copy)).description["aggregation"] == "mean"
