"""Synthetic sounds: twelve procedural leaf classes under four parents (a small AudioSet-style ontology),
their renderers, and the uploaders who record them."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import scipy.fft

ONTOLOGY = {  # parent -> leaves
    "Tonal": ("Hum", "Whistle", "Chime"),
    "Noise": ("Hiss", "Rumble", "Swoosh"),
    "Pulse": ("Click_train", "Knock", "Crackle"),
    "Sweep": ("Siren", "Chirp", "Trill"),
}
PARENT_OF = {leaf: parent for parent, leaves in ONTOLOGY.items() for leaf in leaves}
LEAVES = tuple(PARENT_OF)
VOCABULARY = tuple(sorted(set(LEAVES) | set(ONTOLOGY)))
CLOSED_SET = tuple(leaf for leaf in LEAVES if PARENT_OF[leaf] != "Sweep")
OUT_OF_VOCABULARY = ONTOLOGY["Sweep"]  # audio of these, labelled as something else, is OOV label noise


def mid(label: str) -> str:
    return "/t/syn_" + label.lower()


def ontology_json() -> str:
    """The ontology in AudioSet's ontology.json schema."""
    entries = []
    for label in VOCABULARY:
        children = ONTOLOGY.get(label, ())
        entries.append({"id": mid(label), "name": label.replace("_", " "),
                        "description": f"Synthetic {'category' if children else 'sound'} {label}.",
                        "citation_uri": "", "positive_examples": [],
                        "child_ids": [mid(child) for child in children], "restrictions": []})
    return json.dumps(entries, indent=2)


def seeded_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


# ---------------------------------------------------------------- sound renderers ----
# Each takes (rng, number of samples, sample rate) and returns a float32 waveform with peak ~1.

def _time(n, rate):
    return np.arange(n, dtype=np.float64) / rate


def shaped_noise(rng, n, rate, gain_of_frequency):
    """White noise filtered in the frequency domain (FFT length rounded up to a fast size)."""
    size = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(rng.standard_normal(size))
    spectrum *= gain_of_frequency(scipy.fft.rfftfreq(size, 1.0 / rate))
    return scipy.fft.irfft(spectrum, size)[:n]


def _band_noise(rng, n, rate, low, high):
    return shaped_noise(rng, n, rate, lambda freqs: (freqs >= low) & (freqs <= high))


def _hum(rng, n, rate):
    f0 = rng.uniform(60, 180)
    t = _time(n, rate)
    drift = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    tilt = rng.uniform(0.7, 1.5)
    harmonics = range(1, int(min(4000, rate / 2) // f0))
    return sum(k ** -tilt * np.sin(2 * np.pi * k * f0 * np.cumsum(drift) / rate + rng.uniform(0, 6.3))
               for k in harmonics)


def _whistle(rng, n, rate):
    f0, vibrato_rate, depth = rng.uniform(1200, 3000), rng.uniform(4, 7), rng.uniform(0.01, 0.03)
    t = _time(n, rate)
    freq = f0 * (1 + depth * np.sin(2 * np.pi * vibrato_rate * t))
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) + 0.05 * _band_noise(rng, n, rate, f0 * 0.8, f0 * 1.2)


def _chime(rng, n, rate):
    f0, tau = rng.uniform(400, 1200), rng.uniform(0.2, 0.8)
    t = _time(n, rate)
    strikes = np.zeros(n)
    for onset in np.arange(0, n / rate, rng.uniform(0.6, 1.5)):
        local = np.clip(t - onset, 0, None)
        strikes += (t >= onset) * np.exp(-local / tau) * sum(
            a * np.sin(2 * np.pi * f0 * ratio * local) for ratio, a in ((1, 1), (2.76, 0.6), (5.4, 0.35), (8.93, 0.2)))
    return strikes


def _hiss(rng, n, rate):
    low = rng.uniform(3500, 5500)
    return _band_noise(rng, n, rate, low, min(rate / 2, low + rng.uniform(3000, 6000)))


def _rumble(rng, n, rate):
    return _band_noise(rng, n, rate, 25, rng.uniform(150, 320))


def _swoosh(rng, n, rate):
    block = 2048
    window = np.hanning(block)
    start, end = np.log(rng.uniform(400, 900)), np.log(rng.uniform(2500, 6000))
    if rng.random() < 0.5:
        start, end = end, start
    out = np.zeros(n + block)
    positions = range(0, n, block // 2)
    for i, pos in enumerate(positions):
        centre = np.exp(start + (end - start) * i / max(1, len(positions) - 1))
        out[pos:pos + block] += window * _band_noise(rng, block, rate, centre * 0.7, centre * 1.4)
    return out[:n]


def _click(rng, rate, centre):
    length = int(0.004 * rate)
    t = _time(length, rate)
    return np.exp(-t / 0.0008) * np.sin(2 * np.pi * centre * t)


def _place(n, onsets, shapes):
    out = np.zeros(n)
    for onset, shape in zip(onsets, shapes):
        end = min(n, onset + len(shape))
        out[onset:end] += shape[: end - onset]
    return out


def _click_train(rng, n, rate):
    period = int(rate / rng.uniform(5, 30))
    click = _click(rng, rate, rng.uniform(2000, 4000))
    onsets = np.arange(rng.integers(0, period), n, period)
    return _place(n, onsets, [click] * len(onsets))


def _knock(rng, n, rate):
    freq, tau = rng.uniform(150, 400), rng.uniform(0.02, 0.06)
    t = _time(int(6 * tau * rate), rate)
    knock = np.exp(-t / tau) * np.sin(2 * np.pi * freq * t)
    onsets, position = [], int(rng.uniform(0, 0.1) * rate)
    while position < n:
        onsets.append(position)
        position += int(rng.uniform(0.12, 0.35) * rate)
    return _place(n, onsets, [knock * rng.uniform(0.6, 1.0) for _ in onsets])


def _crackle(rng, n, rate):
    count = rng.poisson(rng.uniform(40, 150) * n / rate)
    onsets = rng.integers(0, n, count)
    return _place(n, onsets, [_click(rng, rate, rng.uniform(1500, 7000)) * rng.uniform(0.2, 1.0) for _ in onsets])


def _siren(rng, n, rate):
    centre, mod_rate, depth = rng.uniform(600, 1500), rng.uniform(0.4, 2.0), rng.uniform(0.15, 0.3)
    freq = centre * (1 + depth * np.sin(2 * np.pi * mod_rate * _time(n, rate) + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return np.sin(phase) + 0.4 * np.sin(2 * phase)


def _chirp(rng, n, rate):
    length = int(rng.uniform(0.05, 0.15) * rate)
    f0, f1 = rng.uniform(1000, 2000), rng.uniform(3000, 6000)
    t = _time(length, rate)
    freq = f0 * (f1 / f0) ** (t / t[-1])
    chirp = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.hanning(length)
    period = int(rate / rng.uniform(3, 8))
    onsets = np.arange(rng.integers(0, period), n, period)
    return _place(n, onsets, [chirp] * len(onsets))


def _trill(rng, n, rate):
    freq, mod_rate = rng.uniform(800, 2500), rng.uniform(12, 30)
    t = _time(n, rate)
    gate = (np.sin(2 * np.pi * mod_rate * t) > 0).astype(float)
    return gate * np.sin(2 * np.pi * freq * t)


RENDERERS = {
    "Hum": _hum, "Whistle": _whistle, "Chime": _chime,
    "Hiss": _hiss, "Rumble": _rumble, "Swoosh": _swoosh,
    "Click_train": _click_train, "Knock": _knock, "Crackle": _crackle,
    "Siren": _siren, "Chirp": _chirp, "Trill": _trill,
}


# ---------------------------------------------------------------- uploaders ----
# Freesound users specialise and record with their own gear and rooms: each synthetic uploader mostly
# records a few classes, through a fixed colouration (EQ) over a characteristic noise floor and level.
# A model can learn that signature as a shortcut, which is why uploader leakage between train and
# validation makes validation optimistic (the split study).

@dataclasses.dataclass(frozen=True)
class Uploader:
    name: str
    specialties: tuple[str, ...]
    tilt: float  # spectral slope of the colouration, dB per octave around 1 kHz
    peak_hz: float
    peak_db: float
    floor_tilt: float  # noise floor colour (0 white .. 1 brown-ish)
    floor_db: float
    gain_db: float


def name_key(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def uploader_profile(name: str, seed: int, audio_classes: tuple[str, ...]) -> Uploader:
    rng = seeded_rng(seed, name_key(name))
    return Uploader(name=name, specialties=tuple(rng.choice(audio_classes, size=2, replace=False)),
                    tilt=float(rng.uniform(-4, 4)), peak_hz=float(np.exp(rng.uniform(np.log(200), np.log(8000)))),
                    peak_db=float(rng.choice([-1, 1]) * rng.uniform(6, 15)), floor_tilt=float(rng.uniform(0, 1)),
                    floor_db=float(rng.uniform(-40, -15)), gain_db=float(rng.uniform(-6, 0)))


def colouration(uploader: Uploader, freqs: np.ndarray) -> np.ndarray:
    """The uploader's EQ as a linear gain per frequency."""
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    peak = uploader.peak_db * np.exp(-0.5 * (np.log2(np.maximum(freqs, 20.0) / uploader.peak_hz) / 0.5) ** 2)
    return 10 ** ((uploader.tilt * octaves + peak) / 20)
