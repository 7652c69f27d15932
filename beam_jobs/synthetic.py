"""Synthetic sound-event dataset in the real FSD50K on-disk layout (a Beam job, deterministic from --seed).

Twelve procedural leaf classes under four parents form a small AudioSet-style ontology. Each class is a
family of sounds with random variation per instance (pitch, timbre, temporal pattern, band), so that a
small CNN can tell them apart, but not trivially: several classes share bands or pitch ranges and differ
only in temporal pattern. Clips last 0.3 to 10 s and hold 1 to 3 overlapping events at random onsets over
a noise floor; labels are propagated to the parents as in FSD50K. Most clips are 44.1 kHz mono 16-bit
WAV; some use other rates or two channels, to exercise the decoder.

    python -m beam_jobs.synthetic --output_dir DIR --clips 500 --seed 0 [beam options]
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

from beam_jobs.datasets import fsd50k as layout
from beam_jobs.manifest import join, write_text
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


# ---------------------------------------------------------------- clip planning ----

@dataclasses.dataclass(frozen=True)
class Event:
    label: str
    onset: float
    duration: float
    gain_db: float


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    index: int
    fname: str
    split: str  # train | val | eval
    uploader: str
    seconds: float
    sample_rate: int
    channels: int
    events: tuple[Event, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """Leaf labels propagated to their parents, in vocabulary order (as FSD50K lists them)."""
        present = {event.label for event in self.events} | {PARENT_OF[event.label] for event in self.events}
        return tuple(label for label in VOCABULARY if label in present)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _choice(rng, weighted):
    values, weights = zip(*weighted)
    return values[rng.choice(len(values), p=np.asarray(weights) / sum(weights))]


def uploader_pool(clips: int) -> list[str]:
    return [f"user{number:05d}" for number in range(max(5, clips // 8))]


def val_uploaders(clips: int, seed: int) -> frozenset[str]:
    """A deterministic uploader-disjoint validation split (no within-class contamination)."""
    pool = uploader_pool(clips)
    ranked = sorted(pool, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())
    return frozenset(ranked[: max(1, round(VAL_UPLOADER_FRACTION * len(pool)))])


def plan_clip(index: int, clips: int, seed: int) -> ClipPlan:
    rng = _rng(seed, index)
    uploader = str(rng.choice(uploader_pool(clips)))
    if index >= clips - round(EVAL_FRACTION * clips):
        split = "eval"
    else:
        split = "val" if uploader in val_uploaders(clips, seed) else "train"
    seconds = float(np.exp(rng.uniform(np.log(0.3), np.log(10.0))))
    events = []
    for _ in range(_choice(rng, EVENTS_PER_CLIP)):
        duration = min(seconds, float(rng.uniform(0.3, 3.0)))
        events.append(Event(label=str(rng.choice(LEAVES)), onset=float(rng.uniform(0, seconds - duration)),
                            duration=duration, gain_db=float(rng.uniform(-20, 0))))
    return ClipPlan(index=index, fname=str(100000 + index), split=split, uploader=uploader,
                    seconds=round(seconds, 3), sample_rate=_choice(rng, SAMPLE_RATES),
                    channels=2 if rng.random() < STEREO_PROBABILITY else 1, events=tuple(events))


def _background(rng, n, rate):
    """A noise floor with a random spectral tilt (white to brown) at -45 to -20 dB RMS."""
    tilt = rng.uniform(0, 1)
    noise = _shaped_noise(rng, n, rate, lambda freqs: np.maximum(freqs, 20.0) ** -tilt)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (rng.uniform(-45, -20) / 20)


def render_clip(plan: ClipPlan, seed: int) -> np.ndarray:
    """(samples, channels) float32 waveform of a planned clip, peak in [0.3, 0.9]."""
    rng = _rng(seed, plan.index, 1)
    rate = plan.sample_rate
    n = max(1, int(plan.seconds * rate))
    mix = _background(rng, n, rate)
    for event in plan.events:
        length = max(1, int(event.duration * rate))
        sound = RENDERERS[event.label](rng, length, rate)
        fade = min(length // 2, int(0.01 * rate))
        envelope = np.ones(length)
        if fade:
            envelope[:fade] = np.linspace(0, 1, fade)
            envelope[-fade:] = np.linspace(1, 0, fade)
        sound = sound * envelope / (np.max(np.abs(sound)) + 1e-9) * 10 ** (event.gain_db / 20)
        start = min(n - 1, int(event.onset * rate))
        mix[start:start + length] += sound[: n - start]
    mix *= rng.uniform(0.3, 0.9) / (np.max(np.abs(mix)) + 1e-9)
    if plan.channels == 2:  # a slightly different level per channel, as a real stereo recording has
        return np.stack([mix, mix * rng.uniform(0.7, 1.0)], axis=1).astype(np.float32)
    return mix[:, None].astype(np.float32)


def audio_path(output_dir: str, plan: ClipPlan) -> str:
    folder = layout.EVAL_AUDIO if plan.split == "eval" else layout.DEV_AUDIO
    return join(output_dir, folder, plan.fname + ".wav")


def write_clip(index: int, clips: int, seed: int, output_dir: str) -> ClipPlan:
    plan = plan_clip(index, clips, seed)
    buffer = io.BytesIO()
    soundfile.write(buffer, render_clip(plan, seed), plan.sample_rate, subtype="PCM_16", format="WAV")
    with FileSystems.create(audio_path(output_dir, plan)) as handle:
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


def write_static_files(output_dir: str) -> None:
    truth = join(output_dir, layout.GROUND_TRUTH)
    write_text(join(truth, "vocabulary.csv"),
               _csv_text(None, [(i, label, mid(label)) for i, label in enumerate(VOCABULARY)]))
    write_text(join(output_dir, "ontology.json"), ontology_json())


def write_ground_truth(plans: list[ClipPlan], output_dir: str) -> None:
    plans = sorted(plans, key=lambda plan: plan.index)
    truth = join(output_dir, layout.GROUND_TRUTH)

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


# ---------------------------------------------------------------- the job ----

def check_clips(clips: int) -> None:
    if not MIN_CLIPS <= clips <= MAX_CLIPS:
        raise ValueError(f"--clips must be between {MIN_CLIPS} and {MAX_CLIPS}, got {clips}")


def generate(output_dir: str, clips: int, seed: int, beam_args: list[str] | None = None,
             test_pipeline=None) -> str:
    """Writes the dataset under `output_dir` and returns it."""
    check_clips(clips)
    write_static_files(output_dir)
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args or []))
    with pipeline as p:
        _ = (p
             | "ClipIndices" >> beam.Create(range(clips))
             | "Distribute" >> beam.Reshuffle()
             | "RenderAndWrite" >> beam.Map(write_clip, clips=clips, seed=seed, output_dir=output_dir)
             | "CollectPlans" >> beam.combiners.ToList()
             | "WriteGroundTruth" >> beam.Map(write_ground_truth, output_dir=output_dir))
    return output_dir


def run(argv=None, test_pipeline=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--clips", type=int, default=500, help=f"{MIN_CLIPS} to {MAX_CLIPS}")
    parser.add_argument("--seed", type=int, default=0)
    args, beam_args = parser.parse_known_args(argv)
    return generate(args.output_dir, args.clips, args.seed, beam_args, test_pipeline)


if __name__ == "__main__":
    print(run())
