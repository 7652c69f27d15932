"""Tag audio files with a trained model: prints each clip's top labels and writes a clip x class score table.

    python -m keras_models.tag --model MODEL_OR_EXPORT_DIR [--output scores.csv] [--top_k 3] [--timestamps]
                               [--aggregation mean] PATH...

MODEL_OR_EXPORT_DIR: a classifier folder (keras_models.train) or its export (keras_models.export). PATHs:
audio files or folders (searched recursively), local or on any Beam filesystem (gs://...). Each file is
decoded and resampled as the feature job does (any rate and channel count; WAV, FLAC, OGG, MP3, AIFF).

--output writes the score table in the scoring job's format (beam_jobs.contracts.score_table: header
`clip_id,patches,<class>...`, clip id = the path); files that cannot be tagged go to `<output>.rejected.csv`
(`path,reason`) and are listed on stderr; --timestamps adds `<output>.patches.csv` (`clip_id,start,end,
<class>...`, one row per patch) and prints each patch's top label. Exits non-zero when no file was tagged.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from beam_jobs.contracts import score_table, storage
from beam_jobs.contracts.aggregation import AGGREGATIONS
from beam_jobs.contracts.features import AUDIO_EXTENSIONS, decode_clip, find_audio_files, resample
from keras_models.export import Tagger

REJECTED_SUFFIX = ".rejected.csv"
PATCHES_SUFFIX = ".patches.csv"


class Progress:
    """`[done/total] rate` on stderr, redrawn in place, for runs of more than a few files."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start, self.done = total, enabled, time.monotonic(), 0

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            end = "\n" if self.done == self.total else ""
            print(f"\r[{self.done}/{self.total}] {rate:.1f} files/s", end=end, file=sys.stderr, flush=True)


def tag_file(tagger: Tagger, path: str) -> dict[str, np.ndarray]:
    """The tagger's outputs for one file, decoded and resampled as the feature job does."""
    waveform, rate = decode_clip(path)
    outputs = tagger(resample(waveform, rate, tagger.sample_rate))
    for name, value in outputs.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"non-finite {name} from the model")
    return outputs


def load_classifier(model: str, aggregation: str = "mean") -> Tagger:
    tagger = Tagger(model, aggregation)
    if not tagger.vocabulary:
        raise ValueError(f"{model} is an encoder: it has no classes to tag with (keras_models.hear gives its "
                         f"embeddings)")
    return tagger


def tag(model: str, paths: list[str], output: str = "", top_k: int = 3, timestamps: bool = False,
        aggregation: str = "mean", progress: bool | None = None) -> dict:
    """Tags every audio file of `paths`; returns {"tagged": {path: clip scores}, "rejected": {path: reason}}."""
    if top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    tagger = load_classifier(model, aggregation)
    files = find_audio_files(paths)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {paths}")
    meter = Progress(len(files), sys.stderr.isatty() and len(files) > 20 if progress is None else progress)
    rows, patch_rows, tagged, rejected = [], [], {}, {}
    for path in files:
        try:
            outputs = tag_file(tagger, path)
        except Exception as error:  # noqa: BLE001 - every file is tagged or rejected with its reason
            rejected[path] = f"{type(error).__name__}: {error}"
            meter.step()
            continue
        scores, patches, starts = outputs["clip_scores"], outputs["patch_scores"], outputs["patch_starts"]
        tagged[path] = scores
        rows.append(score_table.row(path, len(patches), scores))
        best = np.argsort(-scores)[:top_k]
        print(f"{path}\t" + "\t".join(f"{tagger.vocabulary[i]} {scores[i]:.3f}" for i in best))
        if timestamps:
            patch_rows += score_table.patch_rows(path, starts, tagger.patch_seconds, patches)
            for start, patch in zip(starts, patches):
                top = int(np.argmax(patch))
                print(f"  {start:8.2f}-{start + tagger.patch_seconds:.2f} s\t{tagger.vocabulary[top]} {patch[top]:.3f}")
        meter.step()
    for path, reason in rejected.items():
        print(f"rejected {path}: {reason}", file=sys.stderr)
    if output:
        storage.write_text(output, "\n".join([score_table.header(tagger.vocabulary), *rows]) + "\n")
        storage.write_text(output + REJECTED_SUFFIX,
                           "\n".join([storage.csv_line(["path", "reason"]),
                                      *(storage.csv_line([path, reason]) for path, reason in rejected.items())]) + "\n")
        if timestamps:
            storage.write_text(output + PATCHES_SUFFIX,
                               "\n".join([score_table.patch_header(tagger.vocabulary), *patch_rows]) + "\n")
    print(f"tagged {len(tagged)} of {len(files)} files; rejected {len(rejected)}", file=sys.stderr)
    return {"tagged": tagged, "rejected": rejected}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a classifier folder or an export folder")
    parser.add_argument("--output", default="", help="score table CSV to write")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--timestamps", action="store_true", help="per-patch scores with start and end times")
    parser.add_argument("--aggregation", default="mean", choices=AGGREGATIONS,
                        help="for a classifier folder (an export has its own)")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    args = parser.parse_args(argv)
    result = tag(args.model, args.paths, args.output, args.top_k, args.timestamps, args.aggregation)
    return 0 if result["tagged"] else 1


if __name__ == "__main__":
    sys.exit(main())
