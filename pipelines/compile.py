"""Compiles every pipeline to `<output-dir>/<pipeline>.yaml`, ready to upload in the KFP UI.

    python pipelines/compile.py [--output-dir compiled] [--image REGISTRY/IMAGE:TAG] [--gpu-image ...]
        [--gpu-count 1] [--accelerator-type nvidia.com/gpu] [--no-gpu-toleration] [--gpu-retries 3]
        [--disable-caching] [--pipeline NAME ...]

Every task gets the project image (training and scoring tasks the GPU image), CPU and memory requests,
and GPU tasks `gpu-count` accelerators and a toleration for tainted GPU nodes (pipelines/deployment.py).
"""
from __future__ import annotations

import argparse
import os

import yaml
from kfp import compiler

from components import PROJECT_IMAGE_PLACEHOLDER
from pipelines import discover
from pipelines.deployment import Deployment, deployed, set_images


def compile_pipeline(pipeline, path: str, deployment: Deployment = Deployment()) -> str:
    compiler.Compiler().compile(deployed(pipeline, deployment), path)
    with open(path) as handle:
        documents = list(yaml.safe_load_all(handle))
    set_images(documents, deployment)
    with open(path, "w") as handle:
        yaml.safe_dump_all(documents, handle, sort_keys=False)
    return path


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="compiled")
    parser.add_argument("--image", default=PROJECT_IMAGE_PLACEHOLDER,
                        help="the CPU project image (infra/docker/Dockerfile, target cpu)")
    parser.add_argument("--gpu-image", default="", help="the GPU project image for training and scoring tasks "
                        "(infra/docker/Dockerfile, target gpu; default: --image)")
    parser.add_argument("--gpu-count", type=int, default=1, help="GPUs per training/scoring task; 0 = none")
    parser.add_argument("--accelerator-type", default="nvidia.com/gpu",
                        help="KFP on Kubernetes: nvidia.com/gpu; Vertex AI Pipelines: e.g. NVIDIA_L4")
    parser.add_argument("--no-gpu-toleration", action="store_true",
                        help="do not tolerate the nvidia.com/gpu node taint (clusters without tainted GPU nodes)")
    parser.add_argument("--gpu-retries", type=int, default=3,
                        help="retries of a failed or preempted GPU task (60 s backoff, doubling up to an hour)")
    parser.add_argument("--disable-caching", action="store_true",
                        help="compile with caching off for every task (runs can also switch it off when submitted)")
    parser.add_argument("--pipeline", action="append", help="compile only these (default: all)")
    args = parser.parse_args(argv)
    pipelines = discover()
    unknown = set(args.pipeline or []) - set(pipelines)
    if unknown:
        parser.error(f"unknown pipeline(s) {sorted(unknown)}; available: {sorted(pipelines)}")
    deployment = Deployment(image=args.image, gpu_image=args.gpu_image, gpu_count=args.gpu_count,
                            accelerator_type=args.accelerator_type, gpu_toleration=not args.no_gpu_toleration,
                            enable_caching=not args.disable_caching, gpu_retries=args.gpu_retries)
    os.makedirs(args.output_dir, exist_ok=True)
    written = [compile_pipeline(pipelines[name], os.path.join(args.output_dir, f"{name}.yaml"), deployment)
               for name in sorted(args.pipeline or pipelines)]
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
