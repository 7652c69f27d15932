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
