import io

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile

from beam_jobs.contracts import features
from beam_jobs.contracts.params import COSINE_WINDOWS, FeatureParams

PARAMS = FeatureParams()


def wav_bytes(waveform, rate, subtype="PCM_16", format="WAV"):
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, subtype=subtype, format=format)
    return buffer.getvalue()


def sine(freq, seconds, rate, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("params,librosa_norm", [(FeatureParams(), None), (FeatureParams(mel_norm="slaney"), "slaney"),
                                                (FeatureParams.dcase2018(), None)])
def test_mel_filterbank_matches_librosa(params, librosa_norm):
    reference = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels,
                                    fmin=params.fmin, fmax=params.fmax, norm=librosa_norm,
                                    htk=params.mel_scale == "htk")
    np.testing.assert_allclose(features.mel_filterbank(params).T, reference, rtol=1e-4, atol=1e-7)


def test_waveform_normalisation_removes_the_mean_and_divides_by_peak_plus_head_room():
    waveform = np.array([0.1, 0.3, -0.2, 0.2], np.float32)  # mean 0.1 -> [0, 0.2, -0.3, 0.1]; peak 0.3
    expected = np.array([0.0, 0.2, -0.3, 0.1]) / 0.305
    np.testing.assert_allclose(features.normalize_waveform(waveform, PARAMS), expected, rtol=1e-6)
    unchanged = FeatureParams(normalize_waveform=False)
    np.testing.assert_array_equal(features.normalize_waveform(waveform, unchanged), waveform)
    # A DC offset no longer reaches the features; a peak of 0.5 is scaled to 1 / 1.01.
    tone = sine(440, 1.0, 22050)
    np.testing.assert_allclose(features.waveform_to_log_mel(tone + 0.2, 22050, PARAMS),
                               features.waveform_to_log_mel(tone, 22050, PARAMS), atol=1e-3)
    np.testing.assert_allclose(features.prepare_waveform(tone, 22050, PARAMS), tone / 0.505, atol=1e-4)


def test_log_mel_matches_librosa_melspectrogram():
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal(PARAMS.sample_rate * 2) + sine(1000, 2, PARAMS.sample_rate)).astype(np.float32)
    reference = librosa.feature.melspectrogram(
        y=waveform, sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length,
        win_length=PARAMS.win_length, window=PARAMS.window, center=True, pad_mode="constant", power=2.0,
        n_mels=PARAMS.n_mels, fmin=PARAMS.fmin, fmax=PARAMS.fmax, norm=None)
    ours = features.log_mel_spectrogram(waveform, PARAMS)
    assert ours.shape == (reference.shape[1], PARAMS.n_mels)
    np.testing.assert_allclose(ours, np.log10(reference.T + PARAMS.log_offset), atol=1e-3)
    magnitude = FeatureParams(spectrum_power=1.0)
    reference_magnitude = librosa.feature.melspectrogram(
        y=waveform, sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length,
        win_length=PARAMS.win_length, window=PARAMS.window, center=True, pad_mode="constant", power=1.0,
        n_mels=PARAMS.n_mels, fmin=PARAMS.fmin, fmax=PARAMS.fmax, norm=None)
    np.testing.assert_allclose(features.log_mel_spectrogram(waveform, magnitude),
                               np.log10(reference_magnitude.T + PARAMS.log_offset), atol=1e-3)
    natural = FeatureParams(log_scale="natural")
    np.testing.assert_allclose(features.log_mel_spectrogram(waveform, natural),
                               np.log(reference.T + PARAMS.log_offset), atol=2e-3)


def test_sine_energy_lands_in_the_band_of_its_frequency():
    logmel = features.log_mel_spectrogram(sine(440, 1, PARAMS.sample_rate), PARAMS)
    centres = features.mel_to_hz(np.linspace(features.hz_to_mel(PARAMS.fmin), features.hz_to_mel(PARAMS.fmax),
                                             PARAMS.n_mels + 2))[1:-1]
    peak_band = int(np.argmax(logmel[50]))
    assert abs(centres[peak_band] - 440) < 60
    silent = features.log_mel_spectrogram(np.zeros(PARAMS.sample_rate, np.float32), PARAMS)
    np.testing.assert_allclose(silent, np.log10(PARAMS.log_offset), rtol=1e-6)


def test_one_second_is_one_patch_of_101_frames_and_hop_is_half_a_second():
    assert PARAMS.num_frames(PARAMS.sample_rate) == 101
    logmel = features.waveform_to_log_mel(sine(440, 3.0, 22050), 22050, PARAMS)
    patches = features.cut_patches(logmel, PARAMS)
    assert patches.shape == (5, 101, 96)  # starts at 0, 0.5, 1, 1.5, 2 s
    np.testing.assert_array_equal(patches[1], logmel[50:151])


def test_short_clips_are_replicated_to_one_patch():
    short = sine(440, 0.3, 22050)
    waveform = features.replicate_to_length(short, PARAMS.patch_samples)
    assert len(waveform) == PARAMS.patch_samples
    np.testing.assert_array_equal(waveform[len(short):2 * len(short)], short)
    assert features.cut_patches(features.waveform_to_log_mel(short, 22050, PARAMS), PARAMS).shape == (1, 101, 96)


@pytest.mark.parametrize("rate", [16000, 22050, 32000, 44100, 48000])
def test_any_rate_is_resampled_to_22050(rate):
    logmel = features.waveform_to_log_mel(sine(1000, 2.0, rate), rate, PARAMS)
    reference = features.log_mel_spectrogram(sine(1000, 2.0, 22050), PARAMS)
    assert abs(len(logmel) - len(reference)) <= 1
    middle = slice(20, 180)
    assert np.argmax(logmel[middle].mean(axis=0)) == np.argmax(reference[middle].mean(axis=0))


@pytest.mark.parametrize("format,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"),
                                            ("AIFF", "PCM_16")])
def test_decodes_every_supported_format_and_downmixes_stereo(format, subtype):
    left = sine(440, 1.0, 44100)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    waveform, rate = features.decode_audio(wav_bytes(stereo, 44100, subtype, format), f"clip.{format.lower()}")
    assert rate == 44100 and waveform.ndim == 1
    assert np.max(np.abs(waveform)) == pytest.approx(0.25, abs=0.02)  # mean of the two channels


@pytest.mark.parametrize("format,subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
                                            ("WAV", "PCM_U8"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"),
                                            ("AIFF", "PCM_16")])
@pytest.mark.parametrize("channels", [1, 2, 3, 7, 8])
def test_decoding_is_bit_identical_to_libsndfile_float_read_and_numpy_mean(format, subtype, channels):
    # The decoder reads integer encodings as integers and mixes channels by adding columns (both faster);
    # the waveform must keep the exact bits of libsndfile's float32 read and numpy's mean over channels.
    rng = np.random.default_rng(channels)
    audio = np.clip(rng.standard_normal((20000, channels)) * 0.3, -1, 1)
    audio[:50] = 0.0
    data = wav_bytes(audio, 32000, subtype, format)
    reference = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].mean(axis=1)
    waveform, _ = features.decode_audio(data, f"clip.{format.lower()}")
    assert waveform.dtype == np.float32
    assert waveform.view(np.int32).tolist() == reference.view(np.int32).tolist()


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file"),
    (b"this is not audio at all" * 10, "cannot decode"),
    (wav_bytes(np.zeros((0, 1), np.float32), 44100), "no audio samples"),
    (wav_bytes(sine(440, 1.0, 44100), 44100)[:30], "cannot decode"),  # truncated inside the header
])
def test_bad_audio_raises_clip_error_with_reason(data, reason):
    with pytest.raises(features.ClipError, match=reason):
        features.decode_audio(data, "bad.wav")


def test_feature_params_validate_and_round_trip():
    assert FeatureParams.from_json(PARAMS.to_json()) == PARAMS
    assert FeatureParams.from_json(FeatureParams.fsdnoisy18k().to_json()).patch_frames == 100
    with pytest.raises(ValueError, match="fmax"):
        FeatureParams(fmax=20000)
    with pytest.raises(ValueError, match="Unknown feature parameters"):
        FeatureParams.from_json('{"bands": 64}')
    with pytest.raises(ValueError, match="window must be one of"):
        FeatureParams(window="hanning")  # fails here, not on a worker's first clip


@pytest.mark.parametrize("window", sorted(COSINE_WINDOWS))
def test_analysis_window_is_scipys_periodic_window_bit_for_bit(window):
    for length in [1, 2, 3, 4, 5, 16, 17, 400, 660, 1024, 1764]:
        params = FeatureParams(window=window, win_length=length, n_fft=max(length, 1024))
        expected = scipy.signal.get_window(window, length, fftbins=True).astype(np.float32)
        assert features.analysis_window(params).tobytes() == expected.tobytes(), (window, length)
