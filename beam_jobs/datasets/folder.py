"""A plain folder of class sub-folders, for a user's own sounds.

  <root>/<class>/<clip>.<ext>                 every clip in split `train`; an experiment that needs held-out or
                                              val splits gets them made by ingest (splits.make_splits)
  <root>/<split>/<class>/<clip>.<ext>         when the top folders are all split names: train (also training,
                                              dev, development), val (valid, validation), test, eval (evaluation),
                                              used as they are
Option `group_by` (a pipeline's dataset_options) names the clips that come from one source, which made splits
keep on one side: `clip` (none: every clip its own source), `prefix` (the file name up to its first `_`, `-`,
space or `.`: `dog01_take2.wav` -> `dog01`) or `subfolder` (one more folder level, <class>/<source>/<clip>).
Audio extensions: .wav .flac .ogg .aiff .aif .mp3. Every other file under the root is listed in
source.json's "ignored" with its reason (not audio, nested elsewhere than a class folder, operating-system
metadata); an audio path that cannot be read (a dangling link, a folder named like a clip) is a manifest row
that the feature job rejects with its reason, so every file is accounted for.
"""
from __future__ import annotations

import os
import re

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join
from beam_jobs.contracts.features import AUDIO_EXTENSIONS
from beam_jobs.datasets.common import unique_clips

SPLIT_NAMES = {"train": "train", "training": "train", "dev": "train", "development": "train", "val": "val",
               "valid": "val", "validation": "val", "test": "test", "eval": "eval", "evaluation": "eval"}
OS_METADATA = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")


def _entries(root: str) -> list[str]:
    """Every path below the root, relative: files, links (dangling ones too) and, locally, folders named
    like audio files."""
    if FileSystems.get_scheme(root) is None:
        found = []
        for folder, folders, files in os.walk(root, followlinks=True):
            relative = os.path.relpath(folder, root)
            prefix = "" if relative == "." else relative + "/"
            found += [prefix + name for name in files]
            found += [prefix + name for name in folders if name.lower().endswith(AUDIO_EXTENSIONS)]
        return sorted(found)
    matches = FileSystems.match([join(root, "**")])[0].metadata_list
    return sorted(match.path[len(root) + 1:] for match in matches)


GROUPINGS = ("clip", "prefix", "subfolder")
PREFIX_END = re.compile(r"[_\-. ]")


def _ignored_reason(parts: list[str], with_splits: bool, group_by: str = "clip") -> str:
    if any(part in OS_METADATA or part.startswith("._") for part in parts):
        return "operating-system metadata"
    if any(part.startswith(".") for part in parts):
        return "hidden file"
    if not parts[-1].lower().endswith(AUDIO_EXTENSIONS):
        return f"not an audio file ({', '.join(AUDIO_EXTENSIONS)})"
    expected = 2 + with_splits + (group_by == "subfolder")
    if len(parts) != expected:
        layout = ("<split>/" if with_splits else "") + "<class>/" + ("<source>/" if group_by == "subfolder" else "")
        layout += "<clip>"
        return f"nested {'deeper' if len(parts) > expected else 'shallower'} than the layout {layout}"
    return ""


def _source_of(parts: list[str], group_by: str) -> str:
    if group_by == "subfolder":
        return parts[-2]
    return PREFIX_END.split(parts[-1], 1)[0] if group_by == "prefix" else ""


def read_folder(root: str, group_by: str = "clip") -> Manifest:
    if group_by not in GROUPINGS:
        raise DatasetError(f"group_by {group_by!r}: expected one of {GROUPINGS}")
    root = root.rstrip("/")
    relative = [path.split("/") for path in _entries(root)]
    depth = 2 + (group_by == "subfolder")
    audio = [parts for parts in relative if _ignored_reason(parts, len(parts) == depth + 1, group_by) == ""]
    with_splits = any(len(parts) == depth + 1 for parts in audio) and all(
        parts[0].lower() in SPLIT_NAMES for parts in audio if len(parts) == depth + 1)
    rows, ignored = [], []
    for parts in relative:
        reason = _ignored_reason(parts, with_splits, group_by)
        if reason:
            ignored.append({"path": "/".join(parts), "reason": reason})
            continue
        folder, label = (parts[0], parts[1]) if with_splits else ("train", parts[0])
        split = SPLIT_NAMES[folder.lower()]
        clip = "/".join([*parts[1 + with_splits:-1], parts[-1].rsplit(".", 1)[0]])
        rows.append((ManifestRow(clip_id=f"{split}/{label}/{clip}", audio_path=join(root, *parts), split=split,
                                 labels=(label,), uploader=_source_of(parts, group_by)), join(root, *parts)))
    if not rows:
        raise DatasetError(f"{root}: no audio files in class sub-folders ({', '.join(AUDIO_EXTENSIONS)}); expected "
                           f"<root>/<class>/<clip> or <root>/<split>/<class>/<clip> with splits "
                           f"{sorted(SPLIT_NAMES)}; found {len(relative)} files, e.g. "
                           f"{['/'.join(parts) for parts in relative[:3]]}")
    rows = unique_clips(rows)
    return Manifest(rows=rows, vocabulary=tuple(sorted({row.labels[0] for row in rows})),
                    source={"format": "folder", "root": root, "ignored": ignored, "split_folders": with_splits,
                            "grouped_by": group_by})

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    return "train", {}, False


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, plan.split, plan.labels[0], plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    """A class-folder dataset has no metadata files: the folders are its labels."""
