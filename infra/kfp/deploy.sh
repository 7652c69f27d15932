#!/usr/bin/env bash
# Deploys standalone Kubeflow Pipelines (the release pinned in base/kustomization.yaml) with an overlay.
#   infra/kfp/deploy.sh gcp|minio
set -euo pipefail
overlay="${1:?usage: deploy.sh gcp|minio}"
cd "$(dirname "$0")"
version="$(sed -n 's/.*?ref=//p' base/kustomization.yaml)"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${version}"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "overlays/${overlay}"
kubectl -n kubeflow wait --for condition=available --timeout=600s deployment/ml-pipeline deployment/ml-pipeline-ui
echo "UI: kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80, then open http://localhost:8080"
