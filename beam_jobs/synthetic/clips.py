"""Synthetic clips: what each clip of a dataset holds (its plan: split, uploader, events, labels and label
noise, decided by its index and the seed alone) and its rendered audio."""
from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np
import scipy.fft

from beam_jobs.contracts import features
from beam_jobs.datasets.formats import FORMATS, DatasetFormat
from beam_jobs.synthetic.sounds import (CLOSED_SET, LEAVES, OUT_OF_VOCABULARY, PARENT_OF, RENDERERS, VOCABULARY, Uploader,
                                        name_key, seeded_rng, shaped_noise, colouration, uploader_profile)

MIN_CLIPS, MAX_CLIPS = 50, 100_000
VAL_UPLOADER_FRACTION = 0.15
SAMPLE_RATES = ((44100, 0.8), (48000, 0.08), (32000, 0.06), (22050, 0.06))
STEREO_PROBABILITY = 0.1
EVENTS_PER_CLIP = ((1, 0.5), (2, 0.3), (3, 0.2))


@dataclasses.dataclass(frozen=True)
class FormatSpec:
    vocabulary: tuple[str, ...]
    audio_classes: tuple[str, ...]  # classes whose sounds clips are drawn from (before noise)
    single_label: bool
    held_out: str  # the split made of the last clips, from uploaders not seen elsewhere
    held_out_fraction: float


# datasets.formats.SyntheticLayout.classes -> (vocabulary, the classes whose sounds clips are drawn from)
CLASSES = {"ontology": (VOCABULARY, LEAVES), "leaves": (LEAVES, LEAVES), "closed_set": (CLOSED_SET, CLOSED_SET)}


@functools.lru_cache(maxsize=None)
def format_spec(name: str) -> FormatSpec:
    layout = FORMATS[name].synthetic
    vocabulary, audio_classes = CLASSES[layout.classes]
    return FormatSpec(vocabulary, audio_classes, layout.single_label, layout.held_out, layout.held_out_fraction)


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
        return format_spec(self.format)

    @property
    def layout(self) -> DatasetFormat:
        return FORMATS[self.format]

    @property
    def held_out_start(self) -> int:
        return self.clips - round(self.spec.held_out_fraction * self.clips)


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


def _choice(rng, weighted):
    values, weights = zip(*weighted)
    return values[rng.choice(len(values), p=np.asarray(weights) / sum(weights))]


def uploader_names(config: SyntheticConfig, held_out: bool) -> list[str]:
    clips = config.clips - config.held_out_start if held_out else config.held_out_start
    prefix = "evaluser" if held_out else "user"
    return [f"{prefix}{number:05d}" for number in range(max(5, clips // 8))]


@functools.lru_cache(maxsize=16)
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
    return config.layout.synthetic_split(index / config.held_out_start, uploader in val_uploaders(config))


def plan_clip(index: int, config: SyntheticConfig) -> ClipPlan:
    rng = seeded_rng(config.seed, index)
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
    if config.layout.synthetic.explicit_negatives:
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
    noise = shaped_noise(rng, n, rate, lambda freqs: np.maximum(freqs, 20.0) ** -uploader.floor_tilt)
    level = uploader.floor_db + rng.uniform(-3, 3)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (level / 20)


def event_source(config: SyntheticConfig, uploader: Uploader, label: str, clip_rng) -> np.random.Generator:
    """The random source of an event's sound. An uploader records its specialties from the same sources
    (the same dog, the same machine): those events repeat one instance, so the uploader's clips of a
    class are near-duplicates, as in Freesound packs. Other events are fresh instances."""
    if label in uploader.specialties:
        return seeded_rng(config.seed, name_key(uploader.name), LEAVES.index(label))
    return clip_rng


def _sources(plan: ClipPlan, config: SyntheticConfig) -> tuple[list[np.ndarray], Uploader, np.random.Generator]:
    """The clip's noise floor and each event placed in time, before the uploader's colouration and gain,
    and the random generator those still draw from."""
    rng = seeded_rng(config.seed, plan.index, 1)
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
