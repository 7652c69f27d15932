#!/usr/bin/env bash
# Builds and pushes the CPU and GPU project images with one version tag, then prints the compile command.
#   infra/build_images.sh REGISTRY [TAG]
# REGISTRY e.g. europe-west4-docker.pkg.dev/my-project/sound-events; TAG defaults to
# <pyproject version>-<git commit>, so an image always names the code it holds.
set -euo pipefail
registry="${1:?usage: infra/build_images.sh REGISTRY [TAG]}"
cd "$(dirname "$0")/.."
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
tag="${2:-${version}-$(git rev-parse --short HEAD)}"
if [ -n "$(git status --porcelain)" ] && [ -z "${2:-}" ]; then
  echo "the working tree has uncommitted changes: commit them or pass an explicit TAG" >&2
  exit 1
fi
for target in cpu gpu; do
  image="${registry}/sound-event-classifiers-${target}:${tag}"
  docker build --target "${target}" -f infra/docker/Dockerfile -t "${image}" .
  docker push "${image}"
done
echo "python pipelines/compile.py --output-dir compiled" \
  "--image ${registry}/sound-event-classifiers-cpu:${tag}" \
  "--gpu-image ${registry}/sound-event-classifiers-gpu:${tag}"
