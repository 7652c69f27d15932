"""Ingest: a dataset in its released on-disk format -> a validated manifest folder.

    python -m beam_jobs.ingest --dataset_root ROOT --manifest_dir M [--format fsd50k]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

from apache_beam.io.filesystems import FileSystems

from beam_jobs import splits
from beam_jobs.contracts import storage
from beam_jobs.contracts.manifest import DatasetError, Manifest, write_manifest
from beam_jobs.datasets.formats import FORMATS, dataset_format as format_named
from beam_jobs.ontology import load_ontology, propagate_labels


def propagate(manifest: Manifest, ontology_path: str) -> Manifest:
    """Adds to every clip's positives their ancestors that are in the vocabulary."""
    if not manifest.mids:
        raise DatasetError(f"{manifest.source.get('root')}: the {manifest.source.get('format')} files give no "
                           "ontology ids for the vocabulary, so labels cannot be propagated")
    ontology = load_ontology(ontology_path)
    label_to_mid = dict(zip(manifest.vocabulary, manifest.mids))
    rows = tuple(dataclasses.replace(row, labels=propagate_labels(row.labels, label_to_mid, ontology))
                 for row in manifest.rows)
    return dataclasses.replace(manifest, rows=rows, source={**manifest.source, "propagated_with": ontology_path})


MISSING_EXAMPLES = 10  # clip ids listed per split in source.json's missing_audio


def drop_missing_audio(manifest: Manifest) -> Manifest:
    """Leaves out the rows whose audio file is not there, counting them per split in source.json
    ("missing_audio", with examples) and in the log; a dataset where no listed clip has audio fails (metadata
    downloaded without its audio, or audio unzipped elsewhere). A local path is tested directly; on object
    stores each audio folder is listed once."""
    # A local path that is there in any form (a directory, a dangling link) stays: extraction rejects it
    # with its reason. Object stores are listed, a folder at a time.
    present = {row.audio_path for row in manifest.rows
               if not FileSystems.get_scheme(row.audio_path) and os.path.lexists(row.audio_path)}
    folders = sorted({row.audio_path.rsplit("/", 1)[0] for row in manifest.rows
                      if FileSystems.get_scheme(row.audio_path)})
    for folder in folders:
        try:
            present.update(entry.path for entry in FileSystems.match([f"{folder}/*"])[0].metadata_list)
        except (OSError, ValueError):  # a folder that is not there
            continue
    kept = tuple(row for row in manifest.rows if row.audio_path in present)
    missing = [row for row in manifest.rows if row.audio_path not in present]
    if not missing:
        return manifest
    where = f"{manifest.source.get('root', '')} ({manifest.source.get('format', '')} format)"
    if not kept:
        raise DatasetError(f"{where}: none of the {len(missing)} listed clips has its audio file (e.g. "
                           f"{missing[0].audio_path}); is the audio downloaded and unzipped into the dataset root?")
    by_split: dict[str, list[str]] = {}
    for row in missing:
        by_split.setdefault(row.split, []).append(row.clip_id)
    counts = {split: len(clips) for split, clips in sorted(by_split.items())}
    print(f"{where}: {len(missing)} of {len(manifest.rows)} listed clips have no audio file and are left out "
          f"({counts}; e.g. {missing[0].audio_path}); source.json lists them as missing_audio", flush=True)
    reported = {**manifest.source.get("missing_audio", {})}
    for split, clips in sorted(by_split.items()):
        reported[split] = {"clips": len(clips), "examples": clips[:MISSING_EXAMPLES]}
    return dataclasses.replace(manifest, rows=kept, source={**manifest.source, "missing_audio": reported})


def absolute(path: str) -> str:
    """Local paths made absolute, so that the manifest's audio paths hold from any working directory."""
    return path if FileSystems.get_scheme(path) else os.path.abspath(path)


def ingest(dataset_root: str, manifest_dir: str, dataset_format: str = "fsd50k", ontology_path: str = "",
           dataset_options: dict | None = None, needed_splits: tuple[str, ...] = (), seed: int = 0) -> Manifest:
    """Reads and validates a dataset (optionally propagating labels up an ontology), publishes its manifest.
    A dataset inside the manifest folder (a generated one) is kept there. `dataset_options`: the options its
    format takes (datasets.formats; e.g. AudioSet's `train_subsets`). A folder dataset without split folders
    gets the held-out and val splits of `needed_splits` made from `seed` (splits.make_splits), reported in
    made_splits.json beside the manifest."""
    format_ = format_named(dataset_format)
    options = format_.check_options(dataset_options or {})  # before any file is read
    dataset_root, manifest_dir = absolute(dataset_root).rstrip("/"), absolute(manifest_dir).rstrip("/")
    if not storage.is_folder(dataset_root):
        raise DatasetError(f"{dataset_root}: the dataset root is not a folder")
    manifest = drop_missing_audio(format_.reader(dataset_root, **options))
    if ontology_path:
        manifest = propagate(manifest, ontology_path)
    extra_files = {}
    if manifest.source.get("split_folders") is False and set(needed_splits) - set(manifest.splits):
        manifest, report = splits.make_splits(manifest, list(needed_splits), seed)
        extra_files[splits.MADE_SPLITS_FILE] = json.dumps(report, indent=1)
        print(f"{dataset_root}: no split folders; made the splits {report['clips']} (seed {seed}, one source's "
              f"clips on one side: grouped by {report['grouped_by']}), see {splits.MADE_SPLITS_FILE}", flush=True)
    inside = (dataset_root[len(manifest_dir) + 1:].split("/", 1)[0] if dataset_root.startswith(manifest_dir + "/")
              else "")
    write_manifest(manifest_dir, manifest, extra_files, keep=(inside,) if inside else ())
    return manifest


def check_requirements(manifest: Manifest, splits: list[str], flags: list[str]) -> None:
    """Fails, saying what is missing, when a dataset lacks the splits (or flags on its train clips) an
    experiment needs."""
    where = f"{manifest.source.get('root', '')} ({manifest.source.get('format', '')} format)"
    missing = [split for split in splits if split not in manifest.splits]
    if missing:
        hint = (" (a folder dataset's split folders, <root>/<split>/<class>/<clip>, are used as they are; without "
                "split folders, ingest makes every split the experiment needs)"
                if manifest.source.get("format") == "folder" else "")
        raise DatasetError(f"{where}: this experiment needs the splits {list(splits)}, the dataset has "
                           f"{manifest.splits}: {missing} missing{hint}")
    unflagged = [flag for flag in flags if not all(flag in row.flags for row in manifest.rows if row.split == "train")]
    if unflagged:
        raise DatasetError(f"{where}: this experiment needs the per-clip flags {unflagged} on the train clips "
                           f"(FSDnoisy18k's manually_verified marks its clean subset), which the dataset does not "
                           f"record")


def run(argv=None) -> Manifest:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_root", required=True)
    parser.add_argument("--manifest_dir", required=True)
    parser.add_argument("--format", default="fsd50k", choices=sorted(FORMATS))
    parser.add_argument("--ontology", default="", help="ontology.json to propagate labels to their ancestors")
    parser.add_argument("--dataset_options", type=json.loads, default={},
                        help='a JSON object of the options the format takes, e.g. {"train_subsets": "both"} (AudioSet)')
    parser.add_argument("--needed_splits", default="", help="comma-separated: the splits a folder dataset without "
                        "split folders gets made (e.g. train,val,eval)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the made splits")
    args = parser.parse_args(argv)
    return ingest(args.dataset_root, args.manifest_dir, args.format, args.ontology, args.dataset_options,
                  tuple(filter(None, args.needed_splits.split(","))), args.seed)


if __name__ == "__main__":
    manifest = run()
    print(f"{len(manifest.rows)} clips, {len(manifest.vocabulary)} classes, splits {manifest.splits}")
