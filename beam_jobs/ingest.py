"""Ingest: a dataset in its released on-disk format -> a validated manifest folder.

    python -m beam_jobs.ingest --dataset_root ROOT --manifest_dir M [--format fsd50k]
"""
from __future__ import annotations

import argparse

from beam_jobs.datasets.fsd50k import read_fsd50k
from beam_jobs.manifest import Manifest, write_manifest

ADAPTERS = {"fsd50k": read_fsd50k}


def ingest(dataset_root: str, manifest_dir: str, dataset_format: str = "fsd50k") -> Manifest:
    if dataset_format not in ADAPTERS:
        raise ValueError(f"Unknown dataset format {dataset_format!r}; expected one of {sorted(ADAPTERS)}")
    manifest = ADAPTERS[dataset_format](dataset_root)
    write_manifest(manifest_dir, manifest)
    return manifest


def run(argv=None) -> Manifest:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_root", required=True)
    parser.add_argument("--manifest_dir", required=True)
    parser.add_argument("--format", default="fsd50k", choices=sorted(ADAPTERS))
    args = parser.parse_args(argv)
    return ingest(args.dataset_root, args.manifest_dir, args.format)


if __name__ == "__main__":
    manifest = run()
    print(f"{len(manifest.rows)} clips, {len(manifest.vocabulary)} classes, splits {manifest.splits}")
