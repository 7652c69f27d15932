"""Unsupervised sound separation with mixture invariant training (MixIT; Wisdom et al., NeurIPS 2020),
the separation model behind the separated channels of methods.md section 8.

A small masking network on an STFT basis splits a waveform into M channels; softmax masks over the
channels make them sum to the input (mixture consistency). Training input is a mixture of two mixtures
(MoM); the loss is the best of the 2^M ways of remixing the M channels into the two reference mixtures,
under negative SNR with a soft threshold. Everything in the model and the loss is keras.ops (any Keras
backend); the MoM input pipeline is tf.data.

Separator folder: separator_params.json, history.json, checkpoints/step-NNNNNN.weights.h5 (one per
`checkpoint_steps` entry; the views job and the evaluation pick checkpoints by step).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import tempfile

import keras
import numpy as np
from keras import layers, ops

from beam_jobs.contracts import features
from beam_jobs.contracts.manifest import read_manifest
from keras_models.guards import FiniteGuard
from beam_jobs.contracts.model_folder import read_history
from keras_models.model_folder import HistoryFile

PARAMS_FILE = "separator_params.json"
CHECKPOINT_DIR = "checkpoints"
BACKUP_DIR = "backup"  # the last finished epoch while training runs (deleted when it ends)


@dataclasses.dataclass(frozen=True)
class SeparatorParams:
    """The separator and its MixIT training (an STFT-masking network, CPU-sized; the paper's is a TDCN++ with
    M=8: docs/recipes.md, "Separation SSL")."""

    channels: int = 8  # M output channels (the paper's M)
    sample_rate: int = 22050  # the waveform rate, the feature rate (FeatureParams.sample_rate)
    fft_length: int = 512
    hop_length: int = 128
    hidden: int = 128
    blocks: int = 4  # residual dilated 1-D conv blocks over STFT frames (dilation 1, 2, 4, ...)
    segment_seconds: float = 2.0  # MoM training crop
    batch_size: int = 8
    steps: int = 2000
    checkpoint_steps: tuple[int, ...] = (250, 500, 1000, 2000)
    learning_rate: float = 1e-3
    snr_max: float = 30.0  # the loss saturates here: tau = 10^(-snr_max / 10)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "checkpoint_steps", tuple(sorted(int(step) for step in self.checkpoint_steps)))
        problems = []
        if not 2 <= self.channels <= 12:
            problems.append(f"channels must be in [2, 12] (2^channels assignments), got {self.channels}")
        if self.hop_length <= 0 or self.fft_length < self.hop_length:
            problems.append(f"need 0 < hop_length <= fft_length, got {self.hop_length}, {self.fft_length}")
        if min(self.hidden, self.blocks, self.batch_size, self.steps) < 1 or self.learning_rate <= 0:
            problems.append("hidden, blocks, batch_size, steps and learning_rate must be positive")
        if self.segment_seconds * self.sample_rate < self.fft_length:
            problems.append(f"segment_seconds {self.segment_seconds} is shorter than one STFT frame")
        if not self.checkpoint_steps or self.checkpoint_steps[0] < 1 or self.checkpoint_steps[-1] > self.steps:
            problems.append(f"checkpoint_steps {self.checkpoint_steps} must lie in [1, steps={self.steps}]")
        if problems:
            raise ValueError("Invalid SeparatorParams: " + "; ".join(problems))

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SeparatorParams":
        return cls(**json.loads(text))


# ---------------------------------------------------------------- losses and measures ----

@functools.lru_cache(maxsize=16)
def assignment_matrices(channels: int) -> np.ndarray:
    """(2^M, 2, M) binary mixing matrices: in assignment a, channel m goes to reference bit m of a."""
    codes = np.arange(2**channels)[:, None] >> np.arange(channels)[None, :] & 1
    return np.stack([1 - codes, codes], axis=1).astype(np.float32)


def negative_snr(reference_energy, error_energy, snr_max: float = 30.0):
    """-10 log10(|s|^2 / (|s - s_hat|^2 + tau |s|^2)), tau = 10^(-snr_max/10), from the two energies."""
    tau = 10.0 ** (-snr_max / 10.0)
    epsilon = 1e-8
    return -10.0 * (ops.log(reference_energy + epsilon)
                    - ops.log(error_energy + tau * reference_energy + epsilon)) / math.log(10.0)


def mixit_assignment_losses(references, estimates, snr_max: float = 30.0):
    """[batch, 2^M] loss of every assignment: the sum over the two references of the negative SNR of the
    remixed channels. Energies come from inner products of the channels (Gram matrix), so no assignment's
    remix is materialised: |r - A e|^2 = |r|^2 - 2 A (r . e) + A (e . e) A^T."""
    matrices = ops.convert_to_tensor(assignment_matrices(int(estimates.shape[1])))
    gram = ops.einsum("bml,bkl->bmk", estimates, estimates)
    cross = ops.einsum("bnl,bml->bnm", references, estimates)
    reference_energy = ops.sum(references * references, axis=-1)  # [batch, 2]
    remix_energy = ops.einsum("pnm,bmk,pnk->bpn", matrices, gram, matrices)
    error_energy = reference_energy[:, None, :] - 2.0 * ops.einsum("pnm,bnm->bpn", matrices, cross) + remix_energy
    error_energy = ops.maximum(error_energy, 0.0)  # rounding can dip just below zero
    return ops.sum(negative_snr(reference_energy[:, None, :], error_energy, snr_max), axis=-1)


def mixit_loss(references, estimates, snr_max: float = 30.0):
    """Per example: the best assignment's loss (mixture invariant training)."""
    return ops.min(mixit_assignment_losses(references, estimates, snr_max), axis=-1)


class MixITLoss(keras.losses.Loss):
    """MixIT on targets [batch, 2, samples] (the two mixtures) and predictions [batch, M, samples]."""

    def __init__(self, snr_max: float = 30.0, name: str = "mixit", **kwargs):
        super().__init__(name=name, **kwargs)
        self.snr_max = snr_max

    def call(self, y_true, y_pred):
        return mixit_loss(y_true, y_pred, self.snr_max)


def si_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SNR in dB of an estimate against a reference (both zero-meaned)."""
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = (estimate @ reference) / max(reference @ reference, 1e-12) * reference
    noise = estimate - target
    return float(10 * np.log10(max(target @ target, 1e-12) / max(noise @ noise, 1e-12)))


def si_snr_improvement(sources: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Per source: SI-SNR of its channel minus SI-SNR of the mixture (the sum of the sources). Each source
    gets a different channel (M >= sources), the pairing that maximises the total SI-SNR."""
    from scipy.optimize import linear_sum_assignment

    if len(estimates) < len(sources):
        raise ValueError(f"{len(sources)} sources but only {len(estimates)} channels")
    mixture = sources.sum(axis=0)
    table = np.array([[si_snr(source, channel) for channel in estimates] for source in sources])
    rows, columns = linear_sum_assignment(-table)
    baseline = np.array([si_snr(source, mixture) for source in sources])
    return table[rows, columns] - baseline[rows]


# ---------------------------------------------------------------- the separator ----

class MaskingSeparator(keras.Model):
    """waveform [batch, samples] -> channels [batch, M, samples]: log-magnitude STFT -> per-frame dense ->
    residual dilated 1-D convolutions over frames -> M softmax masks on the complex STFT -> inverse STFT.

    The signal is zero-padded by one FFT frame each side before a non-centred STFT, so the inverse STFT
    reconstructs every input sample (the centred STFT's reflection padding does not invert at the edges).
    """

    def __init__(self, params: SeparatorParams = SeparatorParams(), **kwargs):
        super().__init__(**kwargs)
        self.params = params
        bins = params.fft_length // 2 + 1
        self.input_norm = layers.LayerNormalization(name="input_norm")
        self.input_dense = layers.Dense(params.hidden, activation="relu", name="input_dense")
        self.convolutions = [layers.Conv1D(params.hidden, 3, padding="same", dilation_rate=2**block,
                                           activation="relu", name=f"conv_{block}")
                             for block in range(params.blocks)]
        self.norms = [layers.LayerNormalization(name=f"norm_{block}") for block in range(params.blocks)]
        self.mask_dense = layers.Dense(params.channels * bins, name="mask_logits")

    def stft(self, waveform):
        p = self.params
        padded = ops.pad(waveform, [[0, 0], [p.fft_length, p.fft_length + p.hop_length]])
        return ops.stft(padded, p.fft_length, p.hop_length, p.fft_length, window="hann", center=False)

    def call(self, waveform):
        p = self.params
        real, imag = self.stft(waveform)  # [batch, frames, bins]
        frames, bins = ops.shape(real)[1], p.fft_length // 2 + 1
        x = self.input_dense(self.input_norm(ops.log(ops.sqrt(real * real + imag * imag) + 1e-3)))
        for convolution, norm in zip(self.convolutions, self.norms):
            x = norm(x + convolution(x))
        masks = ops.softmax(ops.reshape(self.mask_dense(x), (-1, frames, p.channels, bins)), axis=2)
        masks = ops.reshape(ops.transpose(masks, (0, 2, 1, 3)), (-1, frames, bins))  # [batch * M, frames, bins]
        real = ops.repeat(real, p.channels, axis=0) * masks
        imag = ops.repeat(imag, p.channels, axis=0) * masks
        channels = ops.istft((real, imag), p.fft_length, p.hop_length, p.fft_length, window="hann", center=False)
        samples = ops.shape(waveform)[1]
        channels = channels[:, p.fft_length:p.fft_length + samples]
        return ops.reshape(channels, (-1, p.channels, samples))



def build_separator(params: SeparatorParams) -> MaskingSeparator:
    separator = MaskingSeparator(params, name="separator")
    separator(np.zeros((1, params.segment_samples), dtype=np.float32))  # creates the weights
    return separator


def initial_separator(params: SeparatorParams) -> MaskingSeparator:
    """The untrained network MixIT training starts from (seeded: evaluation rebuilds it as step 0)."""
    keras.utils.set_random_seed(params.seed)
    return build_separator(params)


def checkpoint_label(step: int) -> str:
    return str(step) if step else "0 (untrained)"


def checkpoint_path(separator_dir: str, step: int) -> str:
    return f"{separator_dir.rstrip('/')}/{CHECKPOINT_DIR}/step-{step:06d}.weights.h5"


def read_params(separator_dir: str) -> SeparatorParams:
    import tensorflow as tf

    path = f"{separator_dir.rstrip('/')}/{PARAMS_FILE}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: missing; is {separator_dir} the output of train_separator?")
    with tf.io.gfile.GFile(path) as handle:
        return SeparatorParams.from_json(handle.read())


def load_separator(separator_dir: str, step: int) -> MaskingSeparator:
    """The separator's weights at a training step (one of its checkpoint_steps)."""
    import tensorflow as tf

    params = read_params(separator_dir)
    if step not in params.checkpoint_steps:
        raise ValueError(f"{separator_dir}: no checkpoint at step {step}; saved: {list(params.checkpoint_steps)}")
    separator = build_separator(params)
    path = checkpoint_path(separator_dir, step)
    if "://" in path:  # h5 weights load from local files only
        with tempfile.TemporaryDirectory() as local:
            tf.io.gfile.copy(path, f"{local}/weights.weights.h5")
            separator.load_weights(f"{local}/weights.weights.h5")
    else:
        separator.load_weights(path)
    return separator


def separate(separator: MaskingSeparator, waveform: np.ndarray) -> np.ndarray:
    """(M, samples) channels of one mono waveform at the separator's rate."""
    return np.asarray(separator(np.asarray(waveform, dtype=np.float32)[None], training=False))[0]


# ---------------------------------------------------------------- MixIT training ----

def mixture_of_mixtures_dataset(waveforms, params: SeparatorParams):
    """Endless batches of (MoM [batch, samples], references [batch, 2, samples]): two different clips,
    each cropped at random to the segment length (shorter clips zero-padded at a random offset), summed.

    `waveforms` (e.g. ManifestWaveforms) has len() clips and `read(index)`: the clip as a mono waveform at
    the separator's rate, or None for a clip it cannot read (skipped). Clips are read when drawn, so the
    training set need not fit in memory.
    """
    import tensorflow as tf

    samples = params.segment_samples
    rng = np.random.default_rng(params.seed)

    def crop(waveform):
        if len(waveform) >= samples:
            start = rng.integers(len(waveform) - samples + 1)
            return waveform[start:start + samples]
        out = np.zeros(samples, dtype=np.float32)
        start = rng.integers(samples - len(waveform) + 1)
        out[start:start + len(waveform)] = waveform
        return out

    def examples():
        while True:
            pair = [waveforms.read(index) for index in rng.choice(len(waveforms), 2, replace=False)]
            if any(waveform is None for waveform in pair):
                continue
            references = np.stack([crop(waveform) for waveform in pair]).astype(np.float32)
            yield references.sum(axis=0), references

    signature = (tf.TensorSpec((samples,), tf.float32), tf.TensorSpec((2, samples), tf.float32))
    return (tf.data.Dataset.from_generator(examples, output_signature=signature)
            .batch(params.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


class ManifestWaveforms:
    """The clips of one manifest split as mono waveforms at a sample rate, decoded when read."""

    def __init__(self, manifest_dir: str, split: str, sample_rate: int):
        self.rows = [row for row in read_manifest(manifest_dir).rows if row.split == split]
        if len(self.rows) < 2:
            raise ValueError(f"{manifest_dir}: {len(self.rows)} clips in split {split!r}; MixIT needs at least 2")
        self.manifest_dir, self.sample_rate = manifest_dir, sample_rate
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> np.ndarray | None:
        row = self.rows[index]
        if row.clip_id in self.skipped:
            return None
        try:
            waveform, rate = features.decode_clip(row.audio_path)
        except features.ClipError as error:
            self.skipped[row.clip_id] = str(error)
            if len(self.skipped) > len(self.rows) - 2:  # no two readable clips left to mix
                raise ValueError(f"{self.manifest_dir}: {len(self.skipped)} of {len(self.rows)} clips unreadable, "
                                 f"e.g. {error}") from error
            return None
        return features.resample(waveform, rate, self.sample_rate)


class StepCheckpoints(keras.callbacks.Callback):
    """Saves the weights after each of the given (global) training steps."""

    def __init__(self, separator_dir: str, steps: tuple[int, ...], steps_per_epoch: int):
        super().__init__()
        self.separator_dir, self.steps, self.steps_per_epoch, self.epoch = separator_dir, set(steps), steps_per_epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch  # a resumed run begins at the epoch after its last backup: steps count from there

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step in self.steps:
            self.model.save_weights(checkpoint_path(self.separator_dir, step))


def train_separator(waveforms, separator_dir: str, params: SeparatorParams = SeparatorParams(),
                    log_every: int = 50, extra_callbacks: tuple = ()) -> dict:
    """MixIT training on mixtures of mixtures drawn from `waveforms` (e.g. ManifestWaveforms); writes the
    params, the loss history (mean MixIT loss per `log_every` steps) and one checkpoint per checkpoint step.
    Rerun on the same folder after an interruption, it resumes after the last `log_every` steps it finished
    (with fresh mixtures: the draws after the resume differ from an uninterrupted run's); `extra_callbacks`
    run after that backup."""
    import tensorflow as tf

    tf.io.gfile.makedirs(f"{separator_dir}/{CHECKPOINT_DIR}")
    with tf.io.gfile.GFile(f"{separator_dir}/{PARAMS_FILE}", "w") as handle:
        handle.write(params.to_json())
    separator = initial_separator(params)
    separator.compile(optimizer=keras.optimizers.Adam(params.learning_rate, clipnorm=5.0),
                      loss=MixITLoss(params.snr_max), jit_compile=False)
    log_every = min(log_every, params.steps)
    separator.fit(mixture_of_mixtures_dataset(waveforms, params), epochs=-(-params.steps // log_every),
                  steps_per_epoch=log_every, verbose=2,
                  callbacks=[FiniteGuard(), StepCheckpoints(separator_dir, params.checkpoint_steps, log_every),
                             HistoryFile(separator_dir),
                             keras.callbacks.BackupAndRestore(f"{separator_dir}/{BACKUP_DIR}"), *extra_callbacks])
    history = read_history(separator_dir)
    return {"steps": params.steps, "log_every": log_every, "first_loss": history[0]["loss"],
            "final_loss": history[-1]["loss"],
            "checkpoints": list(params.checkpoint_steps), "parameters": int(separator.count_params()),
            "skipped_clips": len(getattr(waveforms, "skipped", {}))}


# ---------------------------------------------------------------- evaluation ----

def evaluate_separation(separator_dir: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Per checkpoint, and for the untrained network as step 0: mean and median SI-SNR improvement (dB)
    over every source of the (mixture, sources) `pairs` (at the separator's rate; e.g.
    beam_jobs.synthetic.known_source_mixtures); also per number of sources."""
    params = read_params(separator_dir)
    most = max(len(sources) for _, sources in pairs)
    if most > params.channels:
        raise ValueError(f"{separator_dir}: the evaluation mixtures hold up to {most} sources, more than the "
                         f"separator's {params.channels} channels")
    rows = []
    for step in (0, *params.checkpoint_steps):
        # step 0: the untrained network, whose random masks already filter a little
        separator = load_separator(separator_dir, step) if step else initial_separator(params)
        improvements = [si_snr_improvement(sources, separate(separator, mixture)) for mixture, sources in pairs]
        everything = np.concatenate(improvements)
        row = {"step": step, "sources": len(everything), "mean_si_snri": float(everything.mean()),
               "median_si_snri": float(np.median(everything))}
        for count in sorted({len(values) for values in improvements}):
            group = np.concatenate([values for values in improvements if len(values) == count])
            row[f"mean_si_snri_{count}_sources"] = float(group.mean())
        rows.append(row)
    return rows


def separation_markdown(rows: list[dict], training: dict) -> str:
    counts = sorted({key for row in rows for key in row if key.startswith("mean_si_snri_")})
    trained = (f"Trained {int(training['steps'])} steps; MixIT loss (mean of the first {int(training['log_every'])} "
               f"steps -> of the last) {training['first_loss']:.2f} -> {training['final_loss']:.2f} dB. "
               if training else "")
    lines = ["# MixIT separator: SI-SNR improvement on synthetic mixtures with known sources", "",
             trained + "SI-SNRi per source (noise floor and each event), each source paired with its best "
             "distinct channel; step 0 is the untrained network.", "",
             "| checkpoint step | sources | mean SI-SNRi (dB) | median | "
             + " | ".join(key.replace("mean_si_snri_", "mean, ").replace("_", " ") for key in counts) + " |",
             "|---:|---:|---:|---:|" + "---:|" * len(counts)]
    for row in rows:
        cells = [f"{row[key]:.2f}" if key in row else "-" for key in counts]
        lines.append(f"| {checkpoint_label(row['step'])} | {row['sources']} | {row['mean_si_snri']:.2f} | "
                     f"{row['median_si_snri']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
