"""A plain folder of class sub-folders, for a user's own sounds.

  <root>/<class>/<clip>.<ext>                 every clip in split `train`
  <root>/<split>/<class>/<clip>.<ext>         when the top folders are all split names: train (also training,
                                              dev, development), val (valid, validation), test, eval (evaluation)
Audio extensions: .wav .flac .ogg .aiff .aif .mp3. Every other file under the root is listed in
source.json's "ignored" with its reason (not audio, nested elsewhere than a class folder, operating-system
metadata); an audio path that cannot be read (a dangling link, a folder named like a clip) is a manifest row
that the feature job rejects with its reason, so every file is accounted for.
"""
from __future__ import annotations

import os

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


def _ignored_reason(parts: list[str], with_splits: bool) -> str:
    if any(part in OS_METADATA or part.startswith("._") for part in parts):
        return "operating-system metadata"
    if any(part.startswith(".") for part in parts):
        return "hidden file"
    if not parts[-1].lower().endswith(AUDIO_EXTENSIONS):
        return f"not an audio file ({', '.join(AUDIO_EXTENSIONS)})"
    expected = 3 if with_splits else 2
    if len(parts) != expected:
        layout = "<split>/<class>/<clip>" if with_splits else "<class>/<clip>"
        return f"nested {'deeper' if len(parts) > expected else 'shallower'} than the layout {layout}"
    return ""


def read_folder(root: str) -> Manifest:
    root = root.rstrip("/")
    relative = [path.split("/") for path in _entries(root)]
    audio = [parts for parts in relative if _ignored_reason(parts, len(parts) == 3) == ""]
    with_splits = any(len(parts) == 3 for parts in audio) and all(parts[0].lower() in SPLIT_NAMES
                                                                  for parts in audio if len(parts) == 3)
    rows, ignored = [], []
    for parts in relative:
        reason = _ignored_reason(parts, with_splits)
        if reason:
            ignored.append({"path": "/".join(parts), "reason": reason})
            continue
        folder, label, name = parts if with_splits else ("train", *parts)
        split = SPLIT_NAMES[folder.lower()]
        rows.append((ManifestRow(clip_id=f"{split}/{label}/{name.rsplit('.', 1)[0]}",
                                 audio_path=join(root, *parts), split=split, labels=(label,)), join(root, *parts)))
    if not rows:
        raise DatasetError(f"{root}: no audio files in class sub-folders ({', '.join(AUDIO_EXTENSIONS)}); expected "
                           f"<root>/<class>/<clip> or <root>/<split>/<class>/<clip> with splits "
                           f"{sorted(SPLIT_NAMES)}; found {len(relative)} files, e.g. "
                           f"{['/'.join(parts) for parts in relative[:3]]}")
    rows = unique_clips(rows)
    return Manifest(rows=rows, vocabulary=tuple(sorted({row.labels[0] for row in rows})),
                    source={"format": "folder", "root": root, "ignored": ignored})

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    return "train", {}, False


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, plan.split, plan.labels[0], plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    """A class-folder dataset has no metadata files: the folders are its labels."""
