"""A plain folder of class sub-folders, for a user's own sounds.

  <root>/<class>/<clip>.<ext>                 every clip in split `train`
  <root>/<split>/<class>/<clip>.<ext>         when the top folders are all split names (train/val/test/eval)
Audio extensions: .wav .flac .ogg .aiff .aif .mp3; other files are listed in source.json as ignored.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from beam_jobs.datasets.common import AUDIO_EXTENSIONS, check_unique_clips
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join

SPLIT_NAMES = {"train", "val", "test", "eval"}


def _files(root: str) -> list[str]:
    results = FileSystems.match([join(root, "*", "*"), join(root, "*", "*", "*")])
    return sorted(metadata.path for result in results for metadata in result.metadata_list)


def read_folder(root: str) -> Manifest:
    root = root.rstrip("/")
    relative = [path[len(root) + 1:].split("/") for path in _files(root)]
    with_splits = bool(relative) and all(len(parts) == 3 and parts[0] in SPLIT_NAMES for parts in relative
                                         if len(parts) == 3) and any(len(parts) == 3 for parts in relative)
    rows, ignored = [], []
    for parts in relative:
        if (len(parts) == 3) != with_splits or not parts[-1].lower().endswith(AUDIO_EXTENSIONS):
            ignored.append("/".join(parts))
            continue
        split, label, name = parts if with_splits else ("train", *parts)
        rows.append(ManifestRow(clip_id=f"{split}/{label}/{name.rsplit('.', 1)[0]}",
                                audio_path=join(root, *parts), split=split, labels=(label,)))
    if not rows:
        raise DatasetError(f"{root}: no audio files in class sub-folders ({', '.join(AUDIO_EXTENSIONS)})")
    check_unique_clips(rows, root)
    return Manifest(rows=tuple(rows), vocabulary=tuple(sorted({row.labels[0] for row in rows})),
                    source={"format": "folder", "root": root, "ignored": ignored})
