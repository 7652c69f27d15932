"""Pure functions: audio file -> mono waveform -> log-mel spectrogram -> patches.

The STFT follows librosa's conventions (centred frames, zero padding, periodic window of `win_length`
centred in `n_fft`, Slaney mel filters, unnormalised or of unit area), so features match
`librosa.feature.melspectrogram` while running an order of magnitude faster. Before the STFT the waveform
is normalised as in the authors' released extraction: mean removed, divided by its peak plus a head room.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import struct
import typing

import numpy as np
import scipy.fft
import soundfile
import soxr
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.params import COSINE_WINDOWS, PEAK_HEAD_ROOM, FeatureParams


# Shorter clips are rejected: a few samples repeated make no sound event. Real percussive clips can be short
# (Sonic Pi's elec_tick lasts 19 ms, two tabla strokes 43-44 ms), hence 10 ms.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")  # what ingest and tagging look for
MIN_DURATION_SECONDS = 0.01
MAX_FLOAT_AMPLITUDE = 1000.0  # float samples nominally lie in [-1, 1]; 60 dB beyond that is a broken file
HEADER_BYTES = 1 << 16  # where a WAV file's data chunk header must start for the truncation check
LONG_CLIP_SECONDS = 300.0  # longer clips are decoded, resampled and transformed in blocks: bounded memory
BLOCK_SECONDS = 30.0
# Integer encodings read as integers and scaled here: libsndfile's own conversion to float32 costs 5x the
# read, and for these widths it is the same exact product (an integer of <= 24 bits times a power of two).
EXACT_INTEGER_READS = {"PCM_16": ("int16", np.float32(2.0**-15)), "PCM_24": ("int32", np.float32(2.0**-31))}


class ClipError(ValueError):
    """A clip that cannot be turned into features; the reason goes to the dead-letter output."""


def wav_data_shortfall(header: bytes, file_size: int) -> tuple[int, int] | None:
    """(declared audio bytes, bytes missing at the end of the file) of a RIFF/RIFX WAVE file; None for
    other formats, a data chunk beyond the header, or a size left open by a streaming writer."""
    if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
        return None
    order = "<I" if header[:4] == b"RIFF" else ">I"
    offset = 12
    while offset + 8 <= len(header):
        chunk, size = header[offset:offset + 4], struct.unpack(order, header[offset + 4:offset + 8])[0]
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF):
                return None
            return size, max(0, offset + 8 + size - file_size)
        offset += 8 + size + (size & 1)
    return None


def _check_whole(header: bytes, file_size: int, name: str) -> None:
    shortfall = wav_data_shortfall(header, file_size)
    if shortfall and shortfall[1]:
        declared, missing = shortfall
        raise ClipError(f"truncated WAV {name}: the header declares {declared} bytes of audio, the file holds "
                        f"{declared - missing}")


class AudioFile:
    """An open audio file, read whole or in blocks of mono float32 samples; every read applies the same
    checks: a truncated WAV file, a clip shorter than MIN_DURATION_SECONDS, and float samples that are not
    finite or beyond MAX_FLOAT_AMPLITUDE are ClipErrors."""

    def __init__(self, source, name: str, header: bytes, size: int):
        self.name = name
        if size == 0:
            raise ClipError(f"empty file (0 bytes): {name}")
        _check_whole(header, size, name)
        try:
            self.sound = soundfile.SoundFile(source)
        except soundfile.LibsndfileError as error:
            raise ClipError(f"cannot decode {name}: {error.error_string}") from error
        except (RuntimeError, TypeError, ValueError) as error:
            raise ClipError(f"cannot decode {name}: {error}") from error
        self.rate, self.frames = self.sound.samplerate, self.sound.frames
        self.integer_samples = self.sound.subtype.startswith("PCM")

    def close(self) -> None:
        self.sound.close()

    def _mono(self, audio: np.ndarray) -> np.ndarray:
        if not self.integer_samples:  # only float encodings can hold NaN, inf or values far beyond full scale
            if not np.all(np.isfinite(audio)):
                raise ClipError(f"non-finite samples in {self.name}")
            peak = float(np.max(np.abs(audio), initial=0.0))
            if peak > MAX_FLOAT_AMPLITUDE:
                raise ClipError(f"samples out of range in {self.name}: peak {peak:.3g}, beyond "
                                f"{MAX_FLOAT_AMPLITUDE:g} (float audio lies within [-1, 1])")
        channels = audio.shape[1]
        if channels == 1:
            return audio[:, 0]
        if channels >= 8:
            return audio.mean(axis=1)
        # What numpy's mean computes for fewer than 8 channels (a float32 sum from +0.0, then the division),
        # 30x faster than its reduction over short rows: the same bits.
        mixed = np.zeros(len(audio), dtype=np.float32)
        for column in audio.T:
            mixed += column
        return np.divide(mixed, channels, out=mixed)

    def _check_length(self, samples: int) -> None:
        if samples == 0:
            raise ClipError(f"no audio samples in {self.name}")
        if samples < MIN_DURATION_SECONDS * self.rate:
            raise ClipError(f"too short: {self.name} lasts {1000 * samples / self.rate:.1f} ms, under the "
                            f"{1000 * MIN_DURATION_SECONDS:g} ms minimum")

    def _read(self, frames: int) -> np.ndarray:
        try:
            if self.sound.subtype in EXACT_INTEGER_READS:
                dtype, scale = EXACT_INTEGER_READS[self.sound.subtype]
                return np.multiply(self.sound.read(frames, dtype=dtype, always_2d=True), scale, dtype=np.float32)
            return self.sound.read(frames, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            raise ClipError(f"cannot decode {self.name}: {error}") from error

    def read(self) -> np.ndarray:
        audio = self._read(-1)
        self._check_length(audio.shape[0])
        return self._mono(audio)

    def blocks(self, seconds: float) -> typing.Iterator[np.ndarray]:
        samples = 0
        while True:
            audio = self._read(max(1, int(seconds * self.rate)))
            if audio.shape[0] == 0:
                break
            samples += audio.shape[0]
            yield self._mono(audio)
        self._check_length(samples)


@contextlib.contextmanager
def open_clip(path: str) -> typing.Iterator[AudioFile]:
    """Opens a clip on any Beam filesystem: a local file is handed to libsndfile by path, a remote one as a
    stream, so neither is copied into memory."""
    if FileSystems.get_scheme(path) is None:
        if os.path.isdir(path):
            raise ClipError(f"cannot read {path}: a directory, not an audio file")
        if os.path.islink(path) and not os.path.exists(path):
            raise ClipError(f"cannot read {path}: a symbolic link to {os.readlink(path)}, which does not exist")
        if not os.path.isfile(path):
            raise ClipError(f"cannot read {path}: file not found")
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
        audio, stream = AudioFile(path, path, header, os.path.getsize(path)), None
    else:
        try:
            size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
            stream = FileSystems.open(path, compression_type="uncompressed")
            header = stream.read(HEADER_BYTES)
            stream.seek(0)
        except Exception as error:  # Beam wraps filesystem errors in several exception types
            raise ClipError(f"cannot read {path}: {error}") from error
        try:
            audio = AudioFile(stream, path, header, size)
        except ClipError:
            stream.close()
            raise
    try:
        yield audio
    finally:
        audio.close()
        if stream is not None:
            stream.close()


def find_audio_files(paths) -> list[str]:
    """The given files, and the audio files (AUDIO_EXTENSIONS) below the given folders, recursively and
    sorted; local or on any Beam filesystem (gs://...). A path that does not exist is returned as it is, so
    that decoding rejects it with its reason."""
    found = []
    for path in paths:
        if FileSystems.get_scheme(path) is None:
            if os.path.isdir(path):
                found += sorted(os.path.join(folder, name) for folder, _, names in os.walk(path, followlinks=True)
                                for name in names if name.lower().endswith(AUDIO_EXTENSIONS))
            else:
                found.append(path)
        elif FileSystems.exists(path):
            found.append(path)
        else:  # a folder (or a prefix) in an object store
            matches = FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list
            found += sorted(match.path for match in matches if match.path.lower().endswith(AUDIO_EXTENSIONS))
    return found


def decode_audio(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decodes file contents in any format libsndfile knows (WAV, FLAC, OGG, AIFF, MP3); returns the
    downmixed mono float32 waveform and its sample rate (checked as AudioFile says). Files: decode_clip."""
    audio = AudioFile(io.BytesIO(data), name, data[:HEADER_BYTES], len(data))
    try:
        return audio.read(), audio.rate
    finally:
        audio.close()


def decode_clip(path: str) -> tuple[np.ndarray, int]:
    """The mono waveform and sample rate of a clip on any Beam filesystem."""
    with open_clip(path) as audio:
        return audio.read(), audio.rate


def is_silent(waveform: np.ndarray) -> bool:
    """Digital silence: every sample exactly zero."""
    return not np.any(waveform)


def check_finite(log_mel: np.ndarray, name: str) -> np.ndarray:
    """A log-mel with any non-finite value is a ClipError: it must never reach a shard."""
    bad = np.size(log_mel) - np.count_nonzero(np.isfinite(log_mel))
    if bad:
        raise ClipError(f"non-finite log-mel for {name}: {bad} of {np.size(log_mel)} values")
    return log_mel


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return waveform
    return soxr.resample(waveform, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def replicate_to_length(waveform: np.ndarray, min_samples: int) -> np.ndarray:
    """Short clips are repeated end to end up to `min_samples` (the FSD50K baseline's choice)."""
    if len(waveform) >= min_samples:
        return waveform
    repeats = -(-min_samples // len(waveform))
    return np.tile(waveform, repeats)[:min_samples]


def hz_to_mel(hz, scale: str = "slaney"):
    """Slaney's mel scale (linear below 1 kHz, logarithmic above) or HTK's."""
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def mel_to_hz(mel, scale: str = "slaney"):
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@functools.lru_cache(maxsize=8)
def mel_filterbank(params: FeatureParams) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters of peak 1 (mel_norm "none": librosa's norm=None, the
    authors' choice) or of unit area (mel_norm "slaney")."""
    fft_hz = np.linspace(0.0, params.sample_rate / 2, params.n_fft // 2 + 1)
    scale = params.mel_scale
    edges = mel_to_hz(np.linspace(hz_to_mel(params.fmin, scale), hz_to_mel(params.fmax, scale), params.n_mels + 2),
                      scale)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if params.mel_norm == "slaney":
        weights = weights * (2.0 / (upper - lower))
    return np.ascontiguousarray(weights.T, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def analysis_window(params: FeatureParams) -> np.ndarray:
    """The periodic window (scipy.signal.get_window's, fftbins=True), computed here: importing scipy.signal
    cost each Beam worker process 0.6 CPU s."""
    if params.win_length == 1:
        return np.ones(1, dtype=np.float32)
    angles = np.linspace(-np.pi, np.pi, params.win_length + 1)  # the symmetric window one sample longer...
    window = np.zeros(params.win_length + 1)
    for k, coefficient in enumerate(COSINE_WINDOWS[params.window]):
        window += coefficient * np.cos(k * angles)
    return window[:-1].astype(np.float32)  # ...less its last sample


def _log_mel_frames(segment: np.ndarray, n_frames: int, params: FeatureParams) -> np.ndarray:
    """`n_frames` log-mel frames; `segment` starts where the first frame's window starts."""
    # The window occupies the centre of each n_fft frame and the rest is zero, so only those samples are
    # framed; they go to the start of a zeroed n_fft buffer (a time shift: same magnitudes), because
    # scipy's FFT is several times faster on a padded array than with its own `n=` padding.
    frames = np.lib.stride_tricks.sliding_window_view(segment, params.win_length)
    frames = frames[: n_frames * params.hop_length : params.hop_length][:n_frames]
    buffer = np.zeros((n_frames, params.n_fft), dtype=np.float32)
    np.multiply(frames, analysis_window(params), out=buffer[:, : params.win_length])
    spectrum = scipy.fft.rfft(buffer, axis=-1, overwrite_x=True)
    power = spectrum.real**2 + spectrum.imag**2
    if params.spectrum_power == 1.0:
        power = np.sqrt(power, out=power)
    mel = power @ mel_filterbank(params)
    return log_of(mel + params.log_offset, params).astype(np.float32, copy=False)


def log_of(values, params: FeatureParams, ops=np):
    """params.log_scale's logarithm, with numpy or TensorFlow (`ops=tf.math`) operations."""
    return ops.log(values) / np.float32(np.log(10.0)) if params.log_scale == "log10" else ops.log(values)


def log_mel_spectrogram(waveform: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(frames, n_mels) float32 log-mel power spectrogram of a waveform at `params.sample_rate`."""
    waveform = np.asarray(waveform, dtype=np.float32)
    half = params.n_fft // 2
    padded = np.pad(waveform, (half, half + params.n_fft))
    return _log_mel_frames(padded[(params.n_fft - params.win_length) // 2:], params.num_frames(len(waveform)), params)


class StreamedLogMel:
    """The log-mel of a waveform that arrives in blocks: the frames of `log_mel_spectrogram`, computed as
    soon as their samples are there, so only a block and the output are held."""

    def __init__(self, params: FeatureParams, expected_samples: int):
        self.params = params
        self.offset = (params.n_fft - params.win_length) // 2
        self.pending = np.zeros(params.n_fft // 2, dtype=np.float32)  # the centred STFT's left padding
        self.start = 0  # index of pending[0] in the padded signal
        self.samples, self.next_frame = 0, 0
        self.out = np.empty((params.num_frames(expected_samples), params.n_mels), dtype=np.float32)

    def _frames_until(self, last: int) -> None:
        count = last - self.next_frame + 1
        if count <= 0:
            return
        first = self.next_frame * self.params.hop_length + self.offset - self.start
        frames = _log_mel_frames(self.pending[first:], count, self.params)
        if self.next_frame + count > len(self.out):
            self.out = np.concatenate([self.out, np.empty_like(frames)])
        self.out[self.next_frame:self.next_frame + count] = frames
        self.next_frame += count
        drop = self.next_frame * self.params.hop_length + self.offset - self.start
        self.pending, self.start = self.pending[drop:], self.start + drop

    def add(self, block: np.ndarray) -> None:
        self.samples += len(block)
        self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
        available = self.start + len(self.pending)
        self._frames_until((available - self.offset - self.params.win_length) // self.params.hop_length)

    def finish(self) -> np.ndarray:
        self.pending = np.concatenate([self.pending, np.zeros(self.params.n_fft // 2 + self.params.n_fft, np.float32)])
        n_frames = self.params.num_frames(self.samples)
        self._frames_until(n_frames - 1)
        return self.out[:n_frames]


def _resampled_blocks(path: str, params: FeatureParams) -> typing.Iterator[np.ndarray]:
    """A clip's waveform at the feature rate, block by block (streamed resampling)."""
    with open_clip(path) as audio:
        stream = (soxr.ResampleStream(audio.rate, params.sample_rate, 1, dtype="float32", quality="HQ")
                  if audio.rate != params.sample_rate else None)
        for block in audio.blocks(BLOCK_SECONDS):
            yield stream.resample_chunk(block) if stream else block
        if stream:
            yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def clip_log_mel(path: str, params: FeatureParams) -> tuple[np.ndarray, bool]:
    """(log-mel, digital silence) of a clip on any filesystem, as the feature job computes it. A clip
    longer than LONG_CLIP_SECONDS is decoded, resampled and transformed in blocks (the same frames, to
    float rounding), so its memory is the output's plus a block's."""
    with open_clip(path) as audio:
        if audio.frames <= LONG_CLIP_SECONDS * audio.rate:
            waveform = prepare_waveform(audio.read(), audio.rate, params)
            return log_mel_spectrogram(waveform, params), is_silent(waveform)
        expected_samples = -(-audio.frames * params.sample_rate // audio.rate) + 64
    centre, scale = np.float32(0.0), np.float32(1.0)
    if params.normalize_waveform:  # the whole clip's mean and peak first: a pass of their own
        total, count, low, high = 0.0, 0, np.inf, -np.inf
        for block in _resampled_blocks(path, params):
            if len(block):
                total, count = total + float(block.sum(dtype=np.float64)), count + len(block)
                low, high = min(low, float(block.min())), max(high, float(block.max()))
        centre = np.float32(total / count)
        scale = np.float32(1.0 / (max(high - centre, centre - low) + PEAK_HEAD_ROOM))
    log_mel, silent = StreamedLogMel(params, expected_samples), True
    for block in _resampled_blocks(path, params):
        block = ((block - centre) * scale).astype(np.float32, copy=False)
        silent = silent and not np.any(block)
        log_mel.add(block)
    return log_mel.finish(), silent


def patch_starts(n_frames: int, params: FeatureParams) -> range:
    return range(0, n_frames - params.patch_frames + 1, params.patch_hop_frames)


def cut_patches(log_mel: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(patches, patch_frames, n_mels) overlapping patches; the tail shorter than a patch hop is dropped."""
    return np.stack(examples_of(log_mel, dataclasses.replace(params, whole_clips=False)))


def examples_of(log_mel: np.ndarray, params: FeatureParams) -> list[np.ndarray]:
    """What the feature job writes for one clip: its patches (views, not copies), or the whole log-mel
    (params.whole_clips)."""
    if params.whole_clips:
        return [log_mel]
    starts = patch_starts(len(log_mel), params)
    if len(starts) == 0:
        raise ClipError(f"{len(log_mel)} frames is shorter than one patch of {params.patch_frames}")
    return [log_mel[start:start + params.patch_frames] for start in starts]


def example_count(n_frames: int, params: FeatureParams) -> int:
    return 1 if params.whole_clips else len(patch_starts(n_frames, params))


def normalize_waveform(waveform: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The authors' waveform normalisation (edufonseca/uclser20 extract/wav2spec_utils.py, icassp19
    feat_ext.py): mean removed, then divided by the peak magnitude plus PEAK_HEAD_ROOM."""
    if not params.normalize_waveform:
        return waveform
    centred = waveform - np.float32(waveform.mean(dtype=np.float64))
    return (centred / (np.abs(centred).max() + np.float32(PEAK_HEAD_ROOM))).astype(np.float32, copy=False)


def prepare_waveform(waveform: np.ndarray, rate: int, params: FeatureParams) -> np.ndarray:
    """Resampled to the feature rate, normalised, short clips replicated to one patch (the authors' order)."""
    waveform = normalize_waveform(resample(waveform, rate, params.sample_rate), params)
    return replicate_to_length(waveform, params.patch_samples)


def waveform_to_log_mel(waveform: np.ndarray, rate: int, params: FeatureParams) -> np.ndarray:
    """The clip's log-mel (frames, n_mels) after `prepare_waveform`."""
    return log_mel_spectrogram(prepare_waveform(waveform, rate, params), params)
