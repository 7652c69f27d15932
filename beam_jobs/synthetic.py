"""Synthetic sound-event dataset in the real FSD50K on-disk layout (a Beam job, deterministic from --seed).

Twelve procedural leaf classes under four parents form a small AudioSet-style ontology. Each class is a
family of sounds with random variation per instance (pitch, timbre, temporal pattern, band), so that a
small CNN can tell them apart, but not trivially: several classes share bands or pitch ranges and differ
only in temporal pattern. Clips last 0.3 to 10 s and hold 1 to 3 overlapping events at random onsets over
a noise floor; labels are propagated to the parents as in FSD50K. Uploaders specialise and colour their
recordings (see `Uploader`). Besides FSD50K, the job writes the FSDnoisy18k, FSDKaggle2019, AudioSet-style
and class-folder layouts (--format), with controllable label noise and missing positives. Most clips are 44.1 kHz mono 16-bit
WAV; some use other rates or two channels, to exercise the decoder.

    python -m beam_jobs.synthetic --output_dir DIR [--format fsd50k] --clips 500 --seed 0 [beam options]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json

import apache_beam as beam
import numpy as np
import scipy.fft
import soundfile
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts import features
from beam_jobs.datasets import fsd50k as layout
from beam_jobs.contracts.storage import join, write_text
from beam_jobs.runner import pipeline_options

ONTOLOGY = {  # parent -> leaves
    "Tonal": ("Hum", "Whistle", "Chime"),
    "Noise": ("Hiss", "Rumble", "Swoosh"),
    "Pulse": ("Click_train", "Knock", "Crackle"),
    "Sweep": ("Siren", "Chirp", "Trill"),
}
PARENT_OF = {leaf: parent for parent, leaves in ONTOLOGY.items() for leaf in leaves}
LEAVES = tuple(PARENT_OF)
VOCABULARY = tuple(sorted(set(LEAVES) | set(ONTOLOGY)))
MIN_CLIPS, MAX_CLIPS = 50, 100_000
EVAL_FRACTION = 0.2
VAL_UPLOADER_FRACTION = 0.15
SAMPLE_RATES = ((44100, 0.8), (48000, 0.08), (32000, 0.06), (22050, 0.06))
STEREO_PROBABILITY = 0.1
EVENTS_PER_CLIP = ((1, 0.5), (2, 0.3), (3, 0.2))


def mid(label: str) -> str:
    return "/t/syn_" + label.lower()


# ---------------------------------------------------------------- sound renderers ----
# Each takes (rng, number of samples, sample rate) and returns a float32 waveform with peak ~1.

def _time(n, rate):
    return np.arange(n, dtype=np.float64) / rate


def _shaped_noise(rng, n, rate, gain_of_frequency):
    """White noise filtered in the frequency domain (FFT length rounded up to a fast size)."""
    size = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(rng.standard_normal(size))
    spectrum *= gain_of_frequency(scipy.fft.rfftfreq(size, 1.0 / rate))
    return scipy.fft.irfft(spectrum, size)[:n]


def _band_noise(rng, n, rate, low, high):
    return _shaped_noise(rng, n, rate, lambda freqs: (freqs >= low) & (freqs <= high))


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


def _name_key(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def uploader_profile(name: str, seed: int, audio_classes: tuple[str, ...]) -> Uploader:
    rng = _rng(seed, _name_key(name))
    return Uploader(name=name, specialties=tuple(rng.choice(audio_classes, size=2, replace=False)),
                    tilt=float(rng.uniform(-4, 4)), peak_hz=float(np.exp(rng.uniform(np.log(200), np.log(8000)))),
                    peak_db=float(rng.choice([-1, 1]) * rng.uniform(6, 15)), floor_tilt=float(rng.uniform(0, 1)),
                    floor_db=float(rng.uniform(-40, -15)), gain_db=float(rng.uniform(-6, 0)))


def colouration(uploader: Uploader, freqs: np.ndarray) -> np.ndarray:
    """The uploader's EQ as a linear gain per frequency."""
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    peak = uploader.peak_db * np.exp(-0.5 * (np.log2(np.maximum(freqs, 20.0) / uploader.peak_hz) / 0.5) ** 2)
    return 10 ** ((uploader.tilt * octaves + peak) / 20)


# ---------------------------------------------------------------- formats ----

NOISY_VOCABULARY = tuple(leaf for leaf in LEAVES if PARENT_OF[leaf] != "Sweep")
OUT_OF_VOCABULARY = ONTOLOGY["Sweep"]  # audio of these, labelled as something else, is OOV label noise


@dataclasses.dataclass(frozen=True)
class FormatSpec:
    vocabulary: tuple[str, ...]
    audio_classes: tuple[str, ...]  # classes whose sounds clips are drawn from (before noise)
    single_label: bool
    held_out: str  # the split made of the last clips, from uploaders not seen elsewhere
    held_out_fraction: float


FORMATS = {
    "fsd50k": FormatSpec(VOCABULARY, LEAVES, False, "eval", 0.2),
    "fsdnoisy18k": FormatSpec(NOISY_VOCABULARY, NOISY_VOCABULARY, True, "test", 0.1),
    "fsdkaggle2019": FormatSpec(NOISY_VOCABULARY, NOISY_VOCABULARY, False, "test", 0.1),
    "fsdkaggle2018": FormatSpec(NOISY_VOCABULARY, NOISY_VOCABULARY, True, "test", 0.15),
    "audioset": FormatSpec(VOCABULARY, LEAVES, False, "eval", 0.2),
    "folder": FormatSpec(LEAVES, LEAVES, True, "eval", 0.2),
}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Label noise applies to the noisy subsets (FSDnoisy18k's unverified train clips,
    FSDKaggle2019's train_noisy); missing positives and explicit negatives to AudioSet's train split."""

    format: str = "fsd50k"
    clips: int = 500
    seed: int = 0
    label_noise: float = 0.4  # share of noisy-subset clips whose label is wrong
    out_of_vocabulary: float = 0.5  # share of wrong labels whose audio is of no vocabulary class
    missing_positives: float = 0.3  # share of true positives left implicit (AudioSet train)
    explicit_negatives: float = 0.3  # share of truly absent classes verified absent (AudioSet train)
    specialty: float = 0.85  # chance an event is of its uploader's specialties

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"Unknown synthetic format {self.format!r}; expected one of {sorted(FORMATS)}")
        if not MIN_CLIPS <= self.clips <= MAX_CLIPS:
            raise ValueError(f"--clips must be between {MIN_CLIPS} and {MAX_CLIPS}, got {self.clips}")
        for name in ("label_noise", "out_of_vocabulary", "missing_positives", "explicit_negatives", "specialty"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self.format]

    @property
    def held_out_start(self) -> int:
        return self.clips - round(self.spec.held_out_fraction * self.clips)


# ---------------------------------------------------------------- clip planning ----

@dataclasses.dataclass(frozen=True)
class Event:
    label: str  # the class of the sound actually rendered
    onset: float
    duration: float
    gain_db: float


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    index: int
    fname: str
    split: str
    uploader: str
    seconds: float
    sample_rate: int
    channels: int
    events: tuple[Event, ...]
    true_labels: tuple[str, ...]  # what the clip contains, in vocabulary terms
    labels: tuple[str, ...]  # what its metadata says (noisy or incomplete where so configured)
    negatives: tuple[str, ...] = ()  # explicit negatives (AudioSet format)
    noise: str = "clean"  # clean | in_vocabulary | out_of_vocabulary | missing
    flags: tuple[tuple[str, bool], ...] = ()


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _choice(rng, weighted):
    values, weights = zip(*weighted)
    return values[rng.choice(len(values), p=np.asarray(weights) / sum(weights))]


def uploader_names(config: SyntheticConfig, held_out: bool) -> list[str]:
    clips = config.clips - config.held_out_start if held_out else config.held_out_start
    prefix = "evaluser" if held_out else "user"
    return [f"{prefix}{number:05d}" for number in range(max(5, clips // 8))]


def val_uploaders(config: SyntheticConfig) -> frozenset[str]:
    """FSD50K format's dev split: an uploader-disjoint validation set (no within-class contamination)."""
    pool = uploader_names(config, held_out=False)
    ranked = sorted(pool, key=lambda name: hashlib.sha256(f"{config.seed}:{name}".encode()).hexdigest())
    return frozenset(ranked[: max(1, round(VAL_UPLOADER_FRACTION * len(pool)))])


def _propagated(leaves, vocabulary) -> tuple[str, ...]:
    """Leaves and their parents, restricted to (and in the order of) the vocabulary."""
    present = set(leaves) | {PARENT_OF[leaf] for leaf in leaves}
    return tuple(label for label in vocabulary if label in present)


def _split_and_flags(index: int, uploader: str, config: SyntheticConfig) -> tuple[str, dict, bool]:
    """(split, flags, whether the clip's labels are noisy) by position in the dataset."""
    if index >= config.held_out_start:
        return config.spec.held_out, {}, False
    position = index / config.held_out_start
    if config.format == "fsd50k":
        return ("val" if uploader in val_uploaders(config) else "train"), {}, False
    if config.format == "fsdnoisy18k":
        verified = position < 0.1
        return "train", {"manually_verified": verified, "noisy_small": not verified and position < 0.2}, not verified
    if config.format == "fsdkaggle2019":
        return ("train_curated", {}, False) if position < 0.3 else ("train_noisy", {}, True)
    if config.format == "fsdkaggle2018":  # about 40% of the released train set was verified
        verified = position < 0.4
        return "train", {"manually_verified": verified}, not verified
    return "train", {}, False


def plan_clip(index: int, config: SyntheticConfig) -> ClipPlan:
    rng = _rng(config.seed, index)
    spec = config.spec
    held_out = index >= config.held_out_start
    uploader = uploader_profile(str(rng.choice(uploader_names(config, held_out))), config.seed, spec.audio_classes)
    split, flags, noisy = _split_and_flags(index, uploader.name, config)
    seconds = float(np.exp(rng.uniform(np.log(0.3), np.log(10.0))))
    events, given = [], []
    for _ in range(1 if spec.single_label else _choice(rng, EVENTS_PER_CLIP)):
        label = str(rng.choice(uploader.specialties if rng.random() < config.specialty else spec.audio_classes))
        duration = min(seconds, float(rng.uniform(0.3, 3.0)))
        events.append(Event(label=label, onset=float(rng.uniform(0, seconds - duration)), duration=duration,
                            gain_db=float(rng.uniform(-20, 0))))
        given.append(label)
    noise = "clean"
    if noisy and rng.random() < config.label_noise:
        victim = int(rng.integers(len(events)))
        if rng.random() < config.out_of_vocabulary:  # the sound is of no vocabulary class; the label stays
            events[victim] = dataclasses.replace(events[victim], label=str(rng.choice(OUT_OF_VOCABULARY)))
            noise = "out_of_vocabulary"
        else:  # the label names another vocabulary class than the sound's
            given[victim] = str(rng.choice([c for c in spec.audio_classes if c != given[victim]]))
            noise = "in_vocabulary"
    leaves = [event.label for event in events if event.label in spec.vocabulary]
    true_labels, labels = _propagated(leaves, spec.vocabulary), _propagated(given, spec.vocabulary)
    negatives = ()
    if config.format == "audioset":
        absent = [label for label in spec.vocabulary if label not in true_labels]
        if held_out:  # a fully verified evaluation set
            negatives = tuple(absent)
        else:
            kept = [label for label in labels if rng.random() >= config.missing_positives]
            if len(kept) < len(labels):
                noise, labels = "missing", tuple(kept or labels[:1])
            negatives = tuple(label for label in absent if rng.random() < config.explicit_negatives)
    return ClipPlan(index=index, fname=str(100000 + index), split=split, uploader=uploader.name,
                    seconds=round(seconds, 3), sample_rate=_choice(rng, SAMPLE_RATES),
                    channels=2 if rng.random() < STEREO_PROBABILITY else 1, events=tuple(events),
                    true_labels=true_labels, labels=labels, negatives=negatives, noise=noise,
                    flags=tuple(sorted(flags.items())))


def _background(rng, n, rate, uploader: Uploader):
    """The uploader's noise floor (its colour and level, +-3 dB from clip to clip)."""
    noise = _shaped_noise(rng, n, rate, lambda freqs: np.maximum(freqs, 20.0) ** -uploader.floor_tilt)
    level = uploader.floor_db + rng.uniform(-3, 3)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (level / 20)


def event_source(config: SyntheticConfig, uploader: Uploader, label: str, clip_rng) -> np.random.Generator:
    """The random source of an event's sound. An uploader records its specialties from the same sources
    (the same dog, the same machine): those events repeat one instance, so the uploader's clips of a
    class are near-duplicates, as in Freesound packs. Other events are fresh instances."""
    if label in uploader.specialties:
        return _rng(config.seed, _name_key(uploader.name), LEAVES.index(label))
    return clip_rng


def _sources(plan: ClipPlan, config: SyntheticConfig) -> tuple[list[np.ndarray], Uploader, np.random.Generator]:
    """The clip's noise floor and each event placed in time, before the uploader's colouration and gain,
    and the random generator those still draw from."""
    rng = _rng(config.seed, plan.index, 1)
    uploader = uploader_profile(plan.uploader, config.seed, config.spec.audio_classes)
    rate = plan.sample_rate
    n = max(1, int(plan.seconds * rate))
    sources = [_background(rng, n, rate, uploader)]
    for event in plan.events:
        length = max(1, int(event.duration * rate))
        sound = RENDERERS[event.label](event_source(config, uploader, event.label, rng), length, rate)
        fade = min(length // 2, int(0.01 * rate))
        envelope = np.ones(length)
        if fade:
            envelope[:fade] = np.linspace(0, 1, fade)
            envelope[-fade:] = np.linspace(1, 0, fade)
        sound = sound * envelope / (np.max(np.abs(sound)) + 1e-9) * 10 ** (event.gain_db / 20)
        start = min(n - 1, int(event.onset * rate))
        placed = np.zeros(n)
        placed[start:start + length] = sound[: n - start]
        sources.append(placed)
    return sources, uploader, rng


def _coloured(signal: np.ndarray, uploader: Uploader, rate: int) -> np.ndarray:
    size = scipy.fft.next_fast_len(len(signal), real=True)
    spectrum = scipy.fft.rfft(signal, size) * colouration(uploader, scipy.fft.rfftfreq(size, 1.0 / rate))
    return scipy.fft.irfft(spectrum, size)[: len(signal)]


def _mixture_gain(mix: np.ndarray, uploader: Uploader, rng: np.random.Generator) -> float:
    return rng.uniform(0.3, 0.9) * 10 ** (uploader.gain_db / 20) / (np.max(np.abs(mix)) + 1e-9)


def render_clip(plan: ClipPlan, config: SyntheticConfig) -> np.ndarray:
    """(samples, channels) float32 waveform of a planned clip, peak in [0.3, 0.9]."""
    sources, uploader, rng = _sources(plan, config)
    mix = _coloured(sum(sources), uploader, plan.sample_rate)
    mix *= _mixture_gain(mix, uploader, rng)
    if plan.channels == 2:  # a slightly different level per channel, as a real stereo recording has
        return np.stack([mix, mix * rng.uniform(0.7, 1.0)], axis=1).astype(np.float32)
    return mix[:, None].astype(np.float32)


def render_sources(plan: ClipPlan, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """(mono mixture, sources [noise floor, events...]) of a planned clip at its sample rate, float64; the
    sources sum to the mixture (the colouration and gain are linear), which is render_clip's first channel."""
    sources, uploader, rng = _sources(plan, config)
    coloured = np.stack([_coloured(source, uploader, plan.sample_rate) for source in sources])
    mixture = coloured.sum(axis=0)
    gain = _mixture_gain(mixture, uploader, rng)
    return mixture * gain, coloured * gain


# The evaluation mixtures' own seed: clip i of a dataset is drawn from (seed, i), so a dataset generated
# with the same seed would share their random draws.
EVALUATION_SEED = 104729


def known_source_mixtures(count: int, sample_rate: int,
                          seed: int = EVALUATION_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mixture, sources) pairs of synthetic clips (noise floor + 1-3 events) at `sample_rate`, float32;
    the sources sum to the mixture (for evaluating separators)."""
    config = SyntheticConfig(format="fsd50k", clips=max(MIN_CLIPS, count), seed=seed)
    pairs = []
    for index in range(count):
        plan = plan_clip(index, config)
        _, sources = render_sources(plan, config)
        sources = np.stack([features.resample(source.astype(np.float32), plan.sample_rate, sample_rate)
                            for source in sources])
        pairs.append((sources.sum(axis=0), sources))
    return pairs


def audio_path(output_dir: str, plan: ClipPlan, config: SyntheticConfig) -> str:
    name = plan.fname + ".wav"
    if config.format == "fsd50k":
        folder = layout.EVAL_AUDIO if plan.split == "eval" else layout.DEV_AUDIO
        return join(output_dir, folder, name)
    if config.format == "fsdnoisy18k":
        return join(output_dir, "FSDnoisy18k.audio_test" if plan.split == "test" else "FSDnoisy18k.audio_train", name)
    if config.format == "fsdkaggle2019":
        return join(output_dir, f"FSDKaggle2019.audio_{plan.split}", name)
    if config.format == "fsdkaggle2018":
        return join(output_dir, f"FSDKaggle2018.audio_{plan.split}", name)
    if config.format == "audioset":
        return join(output_dir, "audio", plan.split, name)
    return join(output_dir, plan.split, plan.labels[0], name)


def write_clip(index: int, config: SyntheticConfig, output_dir: str, path_of=audio_path) -> ClipPlan:
    """Renders clip `index` and writes it as 16-bit WAV at `path_of(output_dir, plan, config)`."""
    plan = plan_clip(index, config)
    buffer = io.BytesIO()
    soundfile.write(buffer, render_clip(plan, config), plan.sample_rate, subtype="PCM_16", format="WAV")
    with FileSystems.create(path_of(output_dir, plan, config)) as handle:
        handle.write(buffer.getvalue())
    return plan


# ---------------------------------------------------------------- metadata files ----

def _csv_text(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


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


def _write_fsd50k(plans, output_dir, config):
    truth = join(output_dir, layout.GROUND_TRUTH)
    write_text(join(truth, "vocabulary.csv"),
               _csv_text(None, [(i, label, mid(label)) for i, label in enumerate(config.spec.vocabulary)]))

    def labels_row(plan):
        return [plan.fname, ",".join(plan.labels), ",".join(mid(label) for label in plan.labels)]

    dev = [plan for plan in plans if plan.split != "eval"]
    evaluation = [plan for plan in plans if plan.split == "eval"]
    write_text(join(truth, "dev.csv"), _csv_text(layout.DEV_HEADER, [labels_row(p) + [p.split] for p in dev]))
    write_text(join(truth, "eval.csv"), _csv_text(layout.EVAL_HEADER, [labels_row(p) for p in evaluation]))
    for name, subset in (("dev", dev), ("eval", evaluation)):
        info = {plan.fname: {"uploader": plan.uploader, "license": "http://creativecommons.org/publicdomain/zero/1.0/",
                             "title": f"synthetic_{plan.fname}.wav", "tags": list(plan.labels),
                             "description": "Procedurally generated.", "duration": plan.seconds,
                             "sample_rate": plan.sample_rate, "channels": plan.channels}
                for plan in subset}
        write_text(join(output_dir, layout.METADATA, f"{name}_clips_info_FSD50K.json"), json.dumps(info, indent=1))


def _write_fsdnoisy18k(plans, output_dir, config):
    meta = join(output_dir, "FSDnoisy18k.meta")
    train = [[p.fname + ".wav", p.labels[0], mid(p.labels[0]), int(dict(p.flags)["manually_verified"]),
              int(dict(p.flags)["noisy_small"])] for p in plans if p.split == "train"]
    test = [[p.fname + ".wav", p.labels[0], mid(p.labels[0])] for p in plans if p.split == "test"]
    write_text(join(meta, "train.csv"), _csv_text(["fname", "label", "aso_id", "manually_verified", "noisy_small"], train))
    write_text(join(meta, "test.csv"), _csv_text(["fname", "label", "aso_id"], test))


def _write_fsdkaggle2019(plans, output_dir, config):
    meta = join(output_dir, "FSDKaggle2019.meta")
    write_text(join(meta, "vocabulary.csv"), _csv_text(None, list(enumerate(config.spec.vocabulary))))
    for split in ("train_curated", "train_noisy", "test"):
        rows = [[p.fname + ".wav", ",".join(p.labels), str(p.index), "CC0"] for p in plans if p.split == split]
        header = ["fname", "labels", "freesound_id", "license"]
        write_text(join(meta, f"{split}_post_competition.csv"), _csv_text(header, rows))


def _write_fsdkaggle2018(plans, output_dir, config):
    meta = join(output_dir, "FSDKaggle2018.meta")
    train = [[p.fname + ".wav", p.labels[0], int(dict(p.flags)["manually_verified"]), str(p.index), "CC0"]
             for p in plans if p.split == "train"]
    test = [[p.fname + ".wav", p.labels[0], "Private" if p.index % 2 else "Public", str(p.index), "CC0"]
            for p in plans if p.split == "test"]
    write_text(join(meta, "train_post_competition.csv"),
               _csv_text(["fname", "label", "manually_verified", "freesound_id", "license"], train))
    write_text(join(meta, "test_post_competition_scoring_clips.csv"),
               _csv_text(["fname", "label", "usage", "freesound_id", "license"], test))


def _write_audioset(plans, output_dir, config):
    vocabulary = config.spec.vocabulary
    write_text(join(output_dir, "class_labels_indices.csv"),
               _csv_text(["index", "mid", "display_name"], [(i, mid(label), label) for i, label in enumerate(vocabulary)]))
    for split in ("train", "eval"):
        subset = [p for p in plans if p.split == split]
        header = f"# Segments csv created by beam_jobs.synthetic\n# num_ytids={len(subset)}\n" \
                 "# YTID, start_seconds, end_seconds, positive_labels\n"
        for name, field in (("segments", "labels"), ("negatives", "negatives")):
            rows = [f'{p.fname}, 0.000, {p.seconds:.3f}, "{",".join(mid(label) for label in getattr(p, field))}"'
                    for p in subset if getattr(p, field)]
            write_text(join(output_dir, f"{split}_{name}.csv"), header + "".join(row + "\n" for row in rows))


WRITERS = {"fsd50k": _write_fsd50k, "fsdnoisy18k": _write_fsdnoisy18k, "fsdkaggle2019": _write_fsdkaggle2019,
           "fsdkaggle2018": _write_fsdkaggle2018,
           "audioset": _write_audioset, "folder": lambda plans, output_dir, config: None}
TRUTH_FILE = "synthetic_truth.jsonl"


def write_metadata(plans: list[ClipPlan], output_dir: str, config: SyntheticConfig) -> None:
    """The format's metadata files, the ontology, and `synthetic_truth.jsonl`: what each clip really
    contains next to what its metadata says (only synthetic data can tell label noise apart)."""
    plans = sorted(plans, key=lambda plan: plan.index)
    WRITERS[config.format](plans, output_dir, config)
    write_text(join(output_dir, "ontology.json"), ontology_json())
    write_text(join(output_dir, TRUTH_FILE), "".join(json.dumps(
        {"fname": plan.fname, "split": plan.split, "uploader": plan.uploader, "true_labels": list(plan.true_labels),
         "labels": list(plan.labels), "noise": plan.noise}) + "\n" for plan in plans))


# ---------------------------------------------------------------- the job ----

class WriteDataset(beam.PTransform):
    """Clip indices -> each clip rendered and written, then the metadata files of the whole dataset."""

    def __init__(self, config: SyntheticConfig, output_dir: str):
        super().__init__()
        self.config, self.output_dir = config, output_dir

    def expand(self, indices):
        return (indices
                | "Distribute" >> beam.Reshuffle()
                | "RenderAndWrite" >> beam.Map(write_clip, config=self.config, output_dir=self.output_dir)
                | "CollectPlans" >> beam.combiners.ToList()
                | "WriteMetadata" >> beam.Map(write_metadata, output_dir=self.output_dir, config=self.config))


def generate(output_dir: str, clips: int, seed: int, beam_args: list[str] | None = None,
             dataset_format: str = "fsd50k", **options) -> str:
    """Writes the dataset under `output_dir` and returns it; `options` are SyntheticConfig fields."""
    config = SyntheticConfig(format=dataset_format, clips=clips, seed=seed, **options)
    with beam.Pipeline(options=pipeline_options(beam_args or [])) as p:
        _ = p | "ClipIndices" >> beam.Create(range(clips)) | "WriteDataset" >> WriteDataset(config, output_dir)
    return output_dir


def run(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--format", default="fsd50k", choices=sorted(FORMATS))
    parser.add_argument("--clips", type=int, default=500, help=f"{MIN_CLIPS} to {MAX_CLIPS}")
    parser.add_argument("--seed", type=int, default=0)
    defaults = SyntheticConfig()
    for name in ("label_noise", "out_of_vocabulary", "missing_positives", "explicit_negatives", "specialty"):
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    args, beam_args = parser.parse_known_args(argv)
    options = {name: getattr(args, name) for name in
               ("label_noise", "out_of_vocabulary", "missing_positives", "explicit_negatives", "specialty")}
    return generate(args.output_dir, args.clips, args.seed, beam_args, args.format, **options)


if __name__ == "__main__":
    print(run())
