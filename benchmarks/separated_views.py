"""Where to separate: once per clip in the Beam views job, or on the fly in the pretraining input pipeline.

    python benchmarks/separated_views.py [--clips 64] [--checkpoints 4] [--epochs 20,100]

On the same synthetic clips (FSD50K format, 0.3-10 s), with the default separator (4 channels; the
weights do not change the cost) and the VGG-like width-0.5 encoder of the README's study, prints seconds
of CPU work per clip for
  - precomputed: separate the whole clip with each of K checkpoints and compute every channel's log-mel
    (what beam_jobs.separate does, once),
  - on the fly: separate, per example and epoch, only the 101-frame window the view needs (batched, one
    checkpoint) and compute that channel's log-mel,
  - one pretraining step's share per example (two views, SM + CP), for scale,
and the ratio of separation work on the fly / precomputed after E epochs.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--epochs", default="20,100")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from beam_jobs import ingest, synthetic
    from beam_jobs.contracts import features
    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.contracts.params import FeatureParams
    from keras_models import separation, separation_ssl
    from keras_models.architectures import build_encoder
    from keras_models.contrastive import NTXentLoss, projection_head

    params = FeatureParams(whole_clips=True)
    with tempfile.TemporaryDirectory() as workdir:
        root = synthetic.generate(os.path.join(workdir, "data"), max(args.clips, synthetic.MIN_CLIPS), seed=2)
        ingest.ingest(root, os.path.join(workdir, "manifest"))
        rows = read_manifest(os.path.join(workdir, "manifest")).rows[:args.clips]
        waveforms = [features.prepare_waveform(*features.decode_clip(row.audio_path), params) for row in rows]
    seconds_of_audio = sum(len(waveform) for waveform in waveforms) / params.sample_rate
    separator = separation.build_separator(separation.SeparatorParams())
    separation.separate(separator, waveforms[0])  # warm-up

    start = time.process_time()
    for waveform in waveforms:
        for _ in range(args.checkpoints):
            for channel in separation.separate(separator, waveform):
                features.log_mel_spectrogram(channel, params)
    precomputed = (time.process_time() - start) / len(waveforms)

    rng = np.random.default_rng(0)
    batch = 64
    window = params.patch_samples
    segments = np.stack([np.pad(w, (0, max(0, window - len(w))))[s:s + window] for w in waveforms
                         for s in [rng.integers(max(1, len(w) - window + 1))]][:batch])
    segments = np.resize(segments, (batch, window)).astype("float32")
    separator(segments)  # warm-up at this shape
    start = time.process_time()
    repeats = 3
    for _ in range(repeats):
        channels = np.asarray(separator(segments))
        for example in range(batch):
            features.log_mel_spectrogram(channels[example, rng.integers(channels.shape[1])], params)
    on_the_fly = (time.process_time() - start) / (repeats * batch)

    encoder = build_encoder("vgg_like", (params.patch_frames, params.n_mels), 0.5)
    model = separation_ssl.pretraining_model(encoder, projection_head(encoder.output_shape[-1]),
                                             separation_ssl.coincidence_head(encoder.output_shape[-1]))
    model.compile(optimizer="adam", loss={"similarity": NTXentLoss(), "coincidence": separation_ssl.CoincidenceLoss()})
    views = [np.random.default_rng(1).normal(size=(batch, params.patch_frames, params.n_mels)).astype("float32")] * 2
    targets = {"similarity": np.zeros(batch), "coincidence": np.zeros(batch)}
    model.train_on_batch(views, targets)  # warm-up
    start = time.process_time()
    for _ in range(repeats):
        model.train_on_batch(views, targets)
    training = (time.process_time() - start) / (repeats * batch)

    print(f"{len(waveforms)} clips, {seconds_of_audio / len(waveforms):.2f} s of audio per clip on average, "
          f"{args.checkpoints} checkpoints, keras backend {keras.backend.backend()}")
    print(f"precomputed (whole clip, all checkpoints, once): {precomputed * 1e3:8.1f} ms CPU per clip")
    print(f"on the fly (one window, one checkpoint, per epoch): {on_the_fly * 1e3:8.1f} ms CPU per example")
    print(f"pretraining step (SM + CP), per example:           {training * 1e3:8.1f} ms CPU")
    print(f"on the fly adds {on_the_fly / training:.2f}x the training step's work to every epoch")
    for epochs in (int(value) for value in args.epochs.split(",")):
        print(f"after {epochs:4d} epochs: separation work on the fly / precomputed = "
              f"{epochs * on_the_fly / precomputed:.1f}")


if __name__ == "__main__":
    main()
