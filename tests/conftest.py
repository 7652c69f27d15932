import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from beam_jobs import ingest, synthetic  # noqa: E402
from beam_jobs.extract import extract  # noqa: E402

SMALL_CLIPS = 60


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic FSD50K-format dataset (shared; tests must not modify it)."""
    return synthetic.generate(str(tmp_path_factory.mktemp("fsd50k")), clips=SMALL_CLIPS, seed=7)


@pytest.fixture(scope="session")
def manifest_dir(synthetic_root, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("manifest"))
    ingest.ingest(synthetic_root, directory)
    return directory


@pytest.fixture(scope="session")
def features_dir(manifest_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("features"))
    extract(manifest_dir, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_classifier_dir(features_dir, tmp_path_factory):
    """A tiny classifier trained one epoch on the shared feature set (shared; tests must not modify it)."""
    from keras_models.train import TrainParams, train_classifier

    directory = str(tmp_path_factory.mktemp("tiny_classifier"))
    train_classifier(features_dir, directory, TrainParams(width=0.25, epochs=1, batch_size=16))
    return directory


@pytest.fixture(scope="session")
def noisy_manifest_dir(tmp_path_factory):
    """A small synthetic FSDnoisy18k-format dataset, its train clips split into train/val by uploader."""
    from beam_jobs.contracts.manifest import write_manifest
    from beam_jobs.splits import resplit

    root = synthetic.generate(str(tmp_path_factory.mktemp("fsdnoisy18k")), clips=SMALL_CLIPS, seed=3,
                              dataset_format="fsdnoisy18k")
    manifest = ingest.ingest(root, str(tmp_path_factory.mktemp("noisy_ingest")), "fsdnoisy18k")
    directory = str(tmp_path_factory.mktemp("noisy_manifest"))
    write_manifest(directory, resplit(manifest, "uploader", 0.2, seed=0)[0])
    return directory


@pytest.fixture(scope="session")
def noisy_features_dir(noisy_manifest_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("noisy_features"))
    extract(noisy_manifest_dir, directory)
    return directory


@pytest.fixture(scope="session")
def noisy_clip_features_dir(noisy_manifest_dir, tmp_path_factory):
    """The small FSDnoisy18k-format set as whole-clip examples (for contrastive views)."""
    from beam_jobs.contracts.params import FeatureParams

    directory = str(tmp_path_factory.mktemp("noisy_clips"))
    extract(noisy_manifest_dir, directory, FeatureParams(whole_clips=True))
    return directory
