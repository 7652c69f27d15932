"""Data components: ingest (or synthesise) a dataset, split it, extract log-mel features once, re-split them."""
from kfp.dsl import Dataset, Input, Output

from components import BEAM, LIGHT, component


@component(BEAM)
def ingest_dataset(dataset_root: str, dataset_format: str, synthetic_clips: int, seed: int,
                   beam_runner: str, beam_options: list, manifest: Output[Dataset], required_splits: list = [],
                   required_flags: list = [], dataset_options: dict = {}, fingerprint: str = ""):
    """Validates a dataset (empty root: generates a synthetic one in that format) and writes its manifest;
    fails, saying what is missing, when the dataset lacks the splits or flags the experiment needs.
    `dataset_options`: the options its format takes (beam_jobs.datasets.formats). `fingerprint`: the files
    under `dataset_root` (fingerprint_location), so that KFP's cache serves this task only for unchanged files."""
    from beam_jobs import ingest, synthetic
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    root = dataset_root or synthetic.generate(f"{beam.location(manifest)}/synthetic_{dataset_format}",
                                              synthetic_clips, seed, beam.args, dataset_format=dataset_format)
    result = ingest.ingest(root, beam.location(manifest), dataset_format, dataset_options=dataset_options,
                           needed_splits=tuple(required_splits), seed=seed)
    ingest.check_requirements(result, required_splits, required_flags)
    manifest.metadata.update(clips=len(result.rows), classes=len(result.vocabulary), dataset_root=root,
                             fingerprint=fingerprint)


@component(LIGHT, cached=False)
def fingerprint_locations(locations: list) -> str:
    """The files under external locations (names, sizes, modification times; none read), one line each: never
    cached, so a task that reads the locations and takes this as an input is served from KFP's cache only
    while their files are unchanged."""
    from beam_jobs.fingerprint import location_fingerprint

    return "\n".join(f"{location}: {location_fingerprint(location)}" if location else "(no location: synthetic data)"
                     for location in locations)


@component(BEAM)
def extract_features(manifest: Input[Dataset], beam_runner: str, beam_options: list,
                     features: Output[Dataset], whole_clips: bool = False, feature_params: str = "fsd50k"):
    """Beam job: manifest -> log-mel patches (or whole clips) in sharded TFRecords, stats, counts and
    dead letters; `feature_params`: a preset name or a JSON object of FeatureParams fields."""
    import dataclasses

    from beam_jobs.contracts.params import FeatureParams
    from beam_jobs.extract import extract
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    params = dataclasses.replace(FeatureParams.resolve(feature_params), whole_clips=whole_clips)
    counts = extract(beam.location(manifest), beam.location(features), params, beam_args=beam.args)
    features.metadata.update(counts=counts)


@component(BEAM)
def resplit_features(source: Input[Dataset], split_manifest: Input[Dataset], beam_runner: str, beam_options: list,
                     features: Output[Dataset]):
    """Beam job: the `source` feature set re-split or subset by a split manifest, no clip decoded again:
    the records, counts and statistics that extracting the split manifest would write (beam_jobs.resplit)."""
    from beam_jobs.resplit import resplit_features as resplit
    from beam_jobs.runner import BeamSettings

    beam = BeamSettings(beam_runner, beam_options)
    counts = resplit(beam.location(source), beam.location(split_manifest), beam.location(features), beam.args)
    features.metadata.update(counts=counts)


@component(LIGHT)
def split_dev_set(manifest: Input[Dataset], strategy: str, val_fraction: float, seed: int,
                  split_manifest: Output[Dataset], train_fraction: float = 1.0):
    """Reassigns the development clips to train/val with a strategy (then keeps `train_fraction` of the
    train clips); writes split_report.json beside."""
    import dataclasses

    from beam_jobs.contracts.manifest import read_manifest, write_manifest
    from beam_jobs.splits import TRAIN, resplit, split_report_file, subsample_split

    result, report = resplit(read_manifest(manifest.path), strategy, val_fraction, seed)
    if train_fraction < 1:
        result = subsample_split(result, train_fraction, seed)
        report = dataclasses.replace(report, train_clips=sum(row.split == TRAIN for row in result.rows))
    write_manifest(split_manifest.path, result, split_report_file(report))
    split_manifest.metadata.update(strategy=strategy, applied=report.applied, note=report.note,
                                   wc_contamination=report.wc_contamination, bc_contamination=report.bc_contamination)


@component(LIGHT)
def select_train_set(manifest: Input[Dataset], source_splits: list, flag: str, val_fraction: float, seed: int,
                     split_manifest: Output[Dataset]):
    """The clips of `source_splits` (with dataset `flag` set, or unset with "!flag"; "" = all) become the
    train pool, split into train/val by uploader; the held-out test/eval split stays."""
    from beam_jobs.contracts.manifest import read_manifest, write_manifest
    from beam_jobs.splits import resplit, select_train_pool, split_report_file

    pool = select_train_pool(read_manifest(manifest.path), tuple(source_splits), flag)
    result, report = resplit(pool, "uploader", val_fraction, seed)
    write_manifest(split_manifest.path, result, split_report_file(report))
    split_manifest.metadata.update(source_splits=source_splits, flag=flag, train_clips=report.train_clips,
                                   val_clips=report.val_clips, applied=report.applied, note=report.note)
