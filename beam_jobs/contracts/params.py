"""Feature parameters: the one source of truth for the Beam writer, the tf.data reader and the models."""
from __future__ import annotations

import dataclasses
import json

# The analysis windows a feature set may use: cosine sums w[n] = sum_k a_k cos(k x_n), x from -pi to pi, with
# scipy.signal's coefficients a_k (features.analysis_window computes them; a test compares them with scipy's).
COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08), "boxcar": (1.0,)}
LOG_SCALES = ("log10", "natural")
MEL_NORMS = ("none", "slaney")  # triangles of peak 1 (librosa norm=None), or of unit area (norm="slaney")
MEL_SCALES = ("slaney", "htk")  # librosa's default mel formula, or HTK's 2595 log10(1 + f / 700) (htk=True)
PEAK_HEAD_ROOM = 0.005  # waveform / (max |waveform - mean| + this): the authors' normalisation


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Log-mel patch parameters. Defaults are the authors' released extraction at the FSD50K setting
    (edufonseca/uclser20 config/params_unsupervised_cl.yaml `extract:` and extract/wav2spec_utils.py; the
    same 22.05 kHz, 96-band, 30 ms / 10 ms features as the FSD50K paper): docs/recipes.md, "Features"."""

    sample_rate: int = 22050
    n_mels: int = 96
    win_length: int = 660  # 30 ms
    hop_length: int = 220  # 10 ms
    n_fft: int = 2048
    fmin: float = 50.0
    fmax: float = 10500.0
    window: str = "hamming"
    log_offset: float = 1.1e-8
    log_scale: str = "log10"  # LOG_SCALES
    mel_norm: str = "none"  # MEL_NORMS
    mel_scale: str = "slaney"  # MEL_SCALES
    spectrum_power: float = 2.0  # |STFT| ** this before the mel filters: 2 = power (the authors'), 1 = magnitude
    normalize_waveform: bool = True  # mean removed, then divided by its peak + PEAK_HEAD_ROOM, before the STFT
    patch_frames: int = 101  # 1 s
    patch_hop_frames: int = 50  # 0.5 s
    whole_clips: bool = False  # one example per clip holding its whole log-mel (for temporal proximity
    # sampling, which cuts the contrastive views at training time) instead of overlapping patches

    def __post_init__(self):
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}")
        if self.window not in COSINE_WINDOWS:
            problems.append(f"window must be one of {sorted(COSINE_WINDOWS)}, got {self.window!r}")
        if self.hop_length <= 0:
            problems.append(f"hop_length must be positive, got {self.hop_length}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin} fmax={self.fmax}")
        if self.n_mels <= 0 or self.patch_frames <= 0 or self.patch_hop_frames <= 0:
            problems.append("n_mels, patch_frames and patch_hop_frames must be positive")
        if self.log_offset <= 0:
            problems.append(f"log_offset must be positive, got {self.log_offset}")
        if self.log_scale not in LOG_SCALES:
            problems.append(f"log_scale must be one of {LOG_SCALES}, got {self.log_scale!r}")
        if self.mel_norm not in MEL_NORMS:
            problems.append(f"mel_norm must be one of {MEL_NORMS}, got {self.mel_norm!r}")
        if self.mel_scale not in MEL_SCALES:
            problems.append(f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}")
        if self.spectrum_power not in (1.0, 2.0):
            problems.append(f"spectrum_power must be 1 (magnitude) or 2 (power), got {self.spectrum_power}")
        if problems:
            raise ValueError("Invalid FeatureParams: " + "; ".join(problems))

    @property
    def patch_samples(self) -> int:
        """Shortest waveform (in samples) that yields exactly one full patch; shorter clips are replicated."""
        return (self.patch_frames - 1) * self.hop_length

    @property
    def patch_seconds(self) -> float:
        """A patch's span: patch_frames frames centred hop_length apart."""
        return (self.patch_frames - 1) * self.hop_length / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT over `num_samples` samples."""
        return 1 + num_samples // self.hop_length

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureParams":
        values = json.loads(text)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown feature parameters: {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def resolve(cls, spec: str) -> "FeatureParams":
        """A preset's name (PRESETS) or a JSON object of FeatureParams fields."""
        if spec.strip().startswith("{"):
            return cls.from_json(spec)
        presets = {"fsd50k": cls, "fsdnoisy18k": cls.fsdnoisy18k, "dcase2018": cls.dcase2018, "dcase2019": cls.dcase2019}
        if spec not in presets:
            raise ValueError(f"feature_params {spec!r}: expected a preset ({sorted(presets)}) or a JSON object of "
                             f"FeatureParams fields")
        return presets[spec]()

    @classmethod
    def fsdnoisy18k(cls) -> "FeatureParams":
        """The FSDnoisy18k baseline: 44.1 kHz, 40 ms / 20 ms, 0 Hz to Nyquist, 2 s patches with 1 s hop
        (edufonseca/icassp19 config/params.yaml `extract:`)."""
        return cls(sample_rate=44100, win_length=1764, hop_length=882, n_fft=2048, fmin=0.0, fmax=22050.0,
                   log_offset=2.220446049250313e-16, patch_frames=100, patch_hop_frames=50)

    @classmethod
    def _dcase_baseline(cls, **own) -> "FeatureParams":
        """The DCASE Task 2 baselines' TensorFlow features: 44.1 kHz, 25 ms periodic Hann window, 10 ms hop,
        magnitude STFT (2048 bins), HTK mel filters of peak 1, log(mel + 0.001), no waveform normalisation."""
        return cls(sample_rate=44100, win_length=1102, hop_length=441, n_fft=2048, window="hann",
                   log_offset=0.001, log_scale="natural", mel_norm="none", mel_scale="htk", spectrum_power=1.0,
                   normalize_waveform=False, **own)

    @classmethod
    def dcase2018(cls) -> "FeatureParams":
        """DCASE2018 Task 2's baseline (DCASE-REPO/dcase2018_baseline task2/README.md, inputs.py): 64 bands
        of 125-7500 Hz, 0.25 s examples (25 frames) every 0.125 s (12 frames: Python's round(12.5))."""
        return cls._dcase_baseline(n_mels=64, fmin=125.0, fmax=7500.0, patch_frames=25, patch_hop_frames=12)

    @classmethod
    def dcase2019(cls) -> "FeatureParams":
        """DCASE2019 Task 2's baseline (DCASE-REPO/dcase2019_task2_baseline README.md): 96 bands of
        20-20000 Hz, 1 s examples (100 frames) every 0.5 s."""
        return cls._dcase_baseline(n_mels=96, fmin=20.0, fmax=20000.0, patch_frames=100, patch_hop_frames=50)

