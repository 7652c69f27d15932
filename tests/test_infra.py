"""The images and cluster manifests, checked without a Docker engine or a cluster."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFRA = os.path.join(REPOSITORY, "infra")


def read(*parts):
    with open(os.path.join(REPOSITORY, *parts)) as handle:
        return handle.read()


DEVELOPMENT_ONLY = {"pytest", "scikit-learn", "librosa"}  # tests and benchmarks; no runtime code imports them


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


def test_images_have_pinned_bases_installed_requirements_and_a_non_root_user():
    stages = dockerfile_stages()
    assert {"cpu", "gpu", "beam_sdk"} <= set(stages)
    for name, instructions in stages.items():
        base = instructions[0][1].split(" AS ")[0]
        if base in stages:
            continue  # built on another stage of this file
        image, _, tag = base.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"stage {name}: unpinned base {base}"
    cpu = stages["cpu"]
    install = cpu.index(("RUN", "pip install -r requirements.txt"))
    first_code_copy = next(i for i, (op, args) in enumerate(cpu) if op == "COPY" and args.startswith("beam_jobs"))
    assert cpu.index(("COPY", "requirements.txt .")) < install < first_code_copy  # dependencies cached apart
    assert ("RUN", "pip install --no-deps .") in cpu
    for name in ("cpu", "gpu"):
        users = [args for op, args in stages[name] if op == "USER"]
        assert users and users[-1] not in ("root", "0"), f"stage {name} runs as root"
    # the Beam SDK harness matches the pinned Beam, and its Python matches the image's
    beam_sdk = stages["beam_sdk"][0][1]
    assert beam_sdk.startswith(f"apache/beam_python3.11_sdk:{pins()['apache-beam[gcp]']} ")
    assert stages["cpu"][0][1].startswith("python:3.11.")
    assert ("COPY", "--from=beam_sdk /opt/apache/beam /opt/apache/beam") in cpu
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in cpu
    gpu_installs = " ".join(args for op, args in stages["gpu"] if op == "RUN")
    assert "tensorflow[and-cuda]==" in gpu_installs and "requirements.txt" in gpu_installs
    ignored = read(".dockerignore").split()
    assert {".git", ".venv"} <= set(ignored)


def test_shell_scripts_parse():
    for script in ("build_images.sh", "kfp/deploy.sh", "kfp/create_gke_cluster.sh"):
        subprocess.run(["bash", "-n", os.path.join(INFRA, script)], check=True)


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
