"""Feature parameters: the one source of truth for the Beam writer, the tf.data reader and the models."""
from __future__ import annotations

import dataclasses
import json

# The analysis windows a feature set may use: cosine sums w[n] = sum_k a_k cos(k x_n), x from -pi to pi, with
# scipy.signal's coefficients a_k (features.analysis_window computes them; a test compares them with scipy's).
COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08), "boxcar": (1.0,)}
LOG_SCALES = ("log10", "natural")
MEL_NORMS = ("none", "slaney")  # triangles of peak 1 (librosa norm=None), or of unit area (norm="slaney")
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
        presets = {"fsd50k": cls, "fsdnoisy18k": cls.fsdnoisy18k}
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

