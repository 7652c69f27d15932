"""Checks that run inside the cpu image (infra/smoke_test_image.sh), as whichever user the container has.

    python /smoke/image_checks.py

Prints one line per check (`ok` or `FAIL` with the reason) and exits 1 if any failed. Standard library and
the image's own packages only.
"""
import glob
import importlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile

PACKAGES = ("beam_jobs", "keras_models", "components", "pipelines", "apache_beam", "kfp", "keras", "matplotlib")
TEST_TOOLS = ("pytest", "sklearn", "librosa", "numba")
LAUNCHER_ROOTS = ("/minio", "/s3", "/gcs")
TENSORFLOW_NOISE = ("oneDNN custom operations", "absl::InitializeLog", "cuInit", "Could not find cuda drivers")


def writable(directory: str) -> bool:
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def failures_of_imports():
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except Exception as error:  # any import failure is the finding
            yield f"import {name}: {type(error).__name__}: {error}"


def failures_of_contents():
    for tool in TEST_TOOLS:
        if importlib.util.find_spec(tool) is not None:
            yield f"test tool {tool} is installed in the runtime image"
    site_packages = sysconfig.get_paths()["purelib"]
    for package in ("beam_jobs", "keras_models", "components", "pipelines"):
        location = importlib.import_module(package).__file__
        if not location.startswith("/opt/project/"):
            yield f"{package} is imported from {location}, not /opt/project"
        if os.path.exists(os.path.join(site_packages, package)):
            yield f"a second copy of {package} lies in {site_packages}"
    leftovers = glob.glob("/opt/project/build") + glob.glob("/opt/project/*.egg-info") + glob.glob(
        os.path.join(site_packages, "sound_event_classifiers*.dist-info"))
    if leftovers:
        yield f"build leftovers: {leftovers}"


def failures_of_writable_places():
    import matplotlib
    from pipelines import run_local

    home = os.path.expanduser("~")
    places = {"HOME": home, "pip's user base (.local)": __import__("site").getuserbase(),
              "pip's cache": os.path.join(home, ".cache", "pip"),
              "run_local.py's default pipeline root": os.path.join(run_local.REPOSITORY_ROOT, "runs")}
    places.update({f"KFP launcher root {root}": root for root in LAUNCHER_ROOTS})
    for what, directory in places.items():
        if not writable(directory):
            yield f"{what} ({directory}) is not writable"
    config = matplotlib.get_configdir()
    if not config.startswith(home) or not writable(config):
        yield f"matplotlib's config dir is {config} (not a writable folder under HOME)"


def failures_of_tensorflow_output():
    run = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(float(tf.reduce_sum(tf.ones(3))))"],
                         capture_output=True, text=True)
    if run.returncode != 0 or run.stdout.strip() != "3.0":
        yield f"TensorFlow failed: {run.stderr.strip()[-500:]}"
    noise = [line for line in run.stderr.splitlines() if any(text in line for text in TENSORFLOW_NOISE)]
    if noise:
        yield "TensorFlow printed: " + " | ".join(line[:120] for line in noise)


def main() -> int:
    print(f"user: uid {os.getuid()} gid {os.getgid()}, HOME {os.path.expanduser('~')}")
    failed = False
    for check in (failures_of_imports, failures_of_contents, failures_of_writable_places,
                  failures_of_tensorflow_output):
        found = list(check())
        failed = failed or bool(found)
        label = check.__name__.replace("failures_of_", "").replace("_", " ")
        print(f"ok   {label}" if not found else "\n".join(f"FAIL {label}: {finding}" for finding in found))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
