"""AudioSet-style adapter: explicit positives, explicit negatives and (by omission) implicit negatives.

Layout (AudioSet's released CSV format, plus a negatives file of the same shape):
  class_labels_indices.csv        header `index,mid,display_name` (increasing indices, gaps allowed)
  <split>_segments.csv            3 comment lines (#...), then `YTID, start_seconds, end_seconds, "mid1,mid2"`
                                  (the explicit positives). AudioSet's `balanced_train` and `unbalanced_train`
                                  become the `train` split (`train_subsets` picks balanced, unbalanced or
                                  both; the other is listed as ignored); `eval` and any other name stay.
  <split>_negatives.csv           optional, same format: classes verified absent (explicit negatives)
  audio/<split>/<name>.<ext>      <name> as downloaders write it: <YTID>, Y<YTID> (the PANNs scripts) or
                                  <YTID>_<start> (start as in the CSV, or in whole seconds, or in ms); any
                                  format soundfile reads
A class neither positive nor explicitly negative for a clip is an implicit negative (never verified:
possibly a missing positive). Listed clips without an audio file (deleted videos are common) are left out
and counted in source.json ("missing_audio"); a dataset where no listed clip has audio fails.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.features import AUDIO_EXTENSIONS
from beam_jobs.datasets.common import (csv_rows, csv_text, fields_of, header_index, list_folders, split_labels,
                                       unique_clips, unlisted_files)
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, write_text

VOCABULARY_FILE = "class_labels_indices.csv"
SEGMENT_COLUMNS = ["YTID", "start_seconds", "end_seconds", "positive_labels"]


def read_class_labels(path: str) -> dict[str, str]:
    """mid -> display name, in index order. Indices increase; gaps are allowed (a subset of AudioSet's
    classes keeps their indices)."""
    rows = csv_rows(path)
    columns = header_index(path, rows, ["index", "mid", "display_name"], allowed_extra=False)
    mids, last = {}, -1
    for number, row in rows[1:]:
        fields = fields_of(path, number, row, columns)
        if not fields["index"].isdigit() or int(fields["index"]) <= last:
            raise DatasetError(f"{path}:{number}: index {fields['index']!r} is not an integer above the "
                               f"previous row's {last}")
        last = int(fields["index"])
        if fields["mid"] in mids:
            raise DatasetError(f"{path}:{number}: duplicate mid {fields['mid']}")
        mids[fields["mid"]] = fields["display_name"]
    if not mids:
        raise DatasetError(f"{path}: no classes")
    return mids


def read_segments(path: str, mids: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """YTID -> class display names, from a segments file in AudioSet's format."""
    return {ytid: labels for ytid, (_, labels) in read_segment_rows(path, mids).items()}


def read_segment_rows(path: str, mids: dict[str, str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """YTID -> (start_seconds as written, class display names)."""
    result = {}
    for number, row in csv_rows(path, comment="#"):
        if len(row) != len(SEGMENT_COLUMNS):
            raise DatasetError(f"{path}:{number}: expected {len(SEGMENT_COLUMNS)} fields "
                               f"{','.join(SEGMENT_COLUMNS)}, got {len(row)}: {row}")
        ytid, start, _, labels = row
        unknown = [mid for mid in split_labels(labels) if mid not in mids]
        if unknown:
            raise DatasetError(f"{path}:{number}: labels not in {VOCABULARY_FILE}: {unknown}")
        if ytid in result:
            raise DatasetError(f"{path}:{number}: duplicate YTID {ytid}")
        result[ytid] = (start, tuple(mids[mid] for mid in split_labels(labels)))
    return result


TRAIN_SUBSETS = {"balanced": ("balanced_train",), "unbalanced": ("unbalanced_train",),
                 "both": ("balanced_train", "unbalanced_train")}
RELEASED_TRAIN = ("balanced_train", "unbalanced_train")


def audio_names(ytid: str, start: str) -> list[str]:
    """The file names (without extension) that downloaders give a segment's audio."""
    names = [ytid, f"Y{ytid}", f"{ytid}_{start}"]
    try:
        seconds = float(start)
        names += [f"{ytid}_{int(seconds)}", f"{ytid}_{int(round(seconds * 1000))}"]
    except ValueError:
        pass
    return names


def audio_index(paths: list[str]) -> dict[str, str]:
    """File name without extension -> path, for the audio files among a folder's `paths`."""
    return {path.rsplit("/", 1)[-1].rsplit(".", 1)[0]: path for path in paths
            if path.lower().endswith(AUDIO_EXTENSIONS)}


def read_audioset(root: str, train_subsets: str = "balanced") -> Manifest:
    if train_subsets not in TRAIN_SUBSETS:
        raise DatasetError(f"unknown AudioSet train subsets {train_subsets!r}; expected one of {sorted(TRAIN_SUBSETS)}")
    mids = read_class_labels(join(root, VOCABULARY_FILE))
    segment_files = sorted(match.path for match in FileSystems.match([join(root, "*_segments.csv")])[0].metadata_list)
    if not segment_files:
        raise DatasetError(f"{root}: no <split>_segments.csv files")
    rows, ignored, missing, listing = [], [], {}, {}
    order = list(mids.values())
    for path in segment_files:
        subset = path.rsplit("/", 1)[-1][: -len("_segments.csv")]
        if subset in RELEASED_TRAIN and subset not in TRAIN_SUBSETS[train_subsets]:
            ignored += [{"path": item, "reason": f"train subsets are {train_subsets!r}"}
                        for item in (path, join(root, "audio", subset)) if FileSystems.exists(item)]
            continue
        folder = join(root, "audio", subset)
        listing.update(list_folders([folder]))
        split = "train" if subset in RELEASED_TRAIN else subset
        positives = read_segment_rows(path, mids)
        negatives_path = join(root, f"{subset}_negatives.csv")
        negatives = read_segments(negatives_path, mids) if FileSystems.exists(negatives_path) else {}
        for ytid in negatives:
            if ytid not in positives:
                raise DatasetError(f"{negatives_path}: clip {ytid} is not in {path}")
            both = set(positives[ytid][1]) & set(negatives[ytid])
            if both:
                raise DatasetError(f"{negatives_path}: clip {ytid} has {sorted(both)} as positive and negative")
        audio = audio_index(listing.get(folder, []))
        for ytid, (start, labels) in positives.items():
            found = next((audio[name] for name in audio_names(ytid, start) if name in audio), None)
            if found is None:
                missing.setdefault(subset, []).append(ytid)
                continue
            rows.append((ManifestRow(
                clip_id=ytid, audio_path=found, split=split, labels=tuple(sorted(labels, key=order.index)),
                negatives=tuple(sorted(negatives.get(ytid, ()), key=order.index))), path))
    listed = len(rows) + sum(map(len, missing.values()))
    if not rows:
        raise DatasetError(f"{root}: none of the {listed} listed clips has an audio file under audio/<split>/ "
                           f"named <YTID>, Y<YTID> or <YTID>_<start> (e.g. {next(iter(missing.values()))[:3]})")
    if missing:
        print(f"AudioSet: {sum(map(len, missing.values()))} of {listed} listed clips have no audio file and are "
              f"left out ({ {subset: len(ytids) for subset, ytids in missing.items()} })", flush=True)
    rows = unique_clips(rows)
    ignored += unlisted_files(listing, rows)
    source = {"format": "audioset", "root": root, "train_subsets": train_subsets, "ignored": ignored,
              "missing_audio": {subset: {"clips": len(ytids), "examples": ytids[:10]}
                                for subset, ytids in missing.items()}}
    return Manifest(rows=rows, vocabulary=tuple(mids.values()), source=source, mids=tuple(mids))

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    return "train", {}, False


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, "audio", plan.split, plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    classes = [(i, mid(label), label) for i, label in enumerate(vocabulary)]
    write_text(join(root, VOCABULARY_FILE), csv_text(["index", "mid", "display_name"], classes))
    for split in ("train", "eval"):
        subset = [p for p in plans if p.split == split]
        header = f"# Segments csv created by beam_jobs.synthetic\n# num_ytids={len(subset)}\n" \
                 "# YTID, start_seconds, end_seconds, positive_labels\n"
        for name, field in (("segments", "labels"), ("negatives", "negatives")):
            rows = [f'{p.fname}, 0.000, {p.seconds:.3f}, "{",".join(mid(label) for label in getattr(p, field))}"'
                    for p in subset if getattr(p, field)]
            write_text(join(root, f"{split}_{name}.csv"), header + "".join(row + "\n" for row in rows))
