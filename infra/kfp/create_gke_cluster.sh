#!/usr/bin/env bash
# An empty GCP project -> a GKE cluster with a CPU pool and an autoscaling GPU pool, a bucket for the
# pipeline root, and a Google service account that KFP's pods use through Workload Identity.
#   infra/kfp/create_gke_cluster.sh PROJECT REGION BUCKET [GPU_TYPE]
# GPU_TYPE: a GKE accelerator name (default nvidia-l4). GKE installs the driver and taints the GPU
# nodes with nvidia.com/gpu, which the compiled GPU tasks tolerate (pipelines/compile.py).
set -euo pipefail
project="${1:?usage: create_gke_cluster.sh PROJECT REGION BUCKET [GPU_TYPE]}"
region="${2:?region}"
bucket="${3:?bucket}"
gpu_type="${4:-nvidia-l4}"
cluster=sound-events
service_account="kfp-runner@${project}.iam.gserviceaccount.com"

gcloud container clusters create "${cluster}" --project "${project}" --region "${region}" \
  --num-nodes 1 --machine-type e2-standard-8 --workload-pool "${project}.svc.id.goog"
gcloud container node-pools create gpu-pool --project "${project}" --region "${region}" --cluster "${cluster}" \
  --machine-type g2-standard-8 --accelerator "type=${gpu_type},count=1,gpu-driver-version=latest" \
  --enable-autoscaling --min-nodes 0 --max-nodes 4 --num-nodes 0
gcloud storage buckets create "gs://${bucket}" --project "${project}" --location "${region}"
gcloud iam service-accounts create kfp-runner --project "${project}"
gcloud storage buckets add-iam-policy-binding "gs://${bucket}" \
  --member "serviceAccount:${service_account}" --role roles/storage.objectAdmin
for kubernetes_account in pipeline-runner ml-pipeline-ui ml-pipeline-visualizationserver; do
  gcloud iam service-accounts add-iam-policy-binding "${service_account}" --project "${project}" \
    --role roles/iam.workloadIdentityUser \
    --member "serviceAccount:${project}.svc.id.goog[kubeflow/${kubernetes_account}]"
done
gcloud container clusters get-credentials "${cluster}" --project "${project}" --region "${region}"
echo "now set pipeline_root=gs://${bucket}/pipeline-root and gcp_service_account=${service_account}" \
  "in infra/kfp/overlays/gcp/settings.env and run infra/kfp/deploy.sh gcp"
