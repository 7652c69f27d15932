"""Compiles every pipeline to `<output-dir>/<pipeline>.yaml`, ready to upload in the KFP UI.

    python pipelines/compile.py [--output-dir compiled] [--image REGISTRY/IMAGE:TAG] [--pipeline NAME ...]
"""
from __future__ import annotations

import argparse
import os

import yaml
from kfp import compiler

from components import PROJECT_IMAGE_PLACEHOLDER
from pipelines import discover


def compile_pipeline(pipeline_func, path: str, image: str) -> str:
    """Compiles one pipeline and sets every container task's image (components carry a placeholder)."""
    compiler.Compiler().compile(pipeline_func, path)
    with open(path) as handle:
        documents = list(yaml.safe_load_all(handle))
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        if "container" in executor:
            executor["container"]["image"] = image
    with open(path, "w") as handle:
        yaml.safe_dump_all(documents, handle, sort_keys=False)
    return path


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="compiled")
    parser.add_argument("--image", default=PROJECT_IMAGE_PLACEHOLDER,
                        help="the project image every task runs in (build it from infra/docker)")
    parser.add_argument("--pipeline", action="append", help="compile only these (default: all)")
    args = parser.parse_args(argv)
    pipelines = discover()
    unknown = set(args.pipeline or []) - set(pipelines)
    if unknown:
        parser.error(f"unknown pipeline(s) {sorted(unknown)}; available: {sorted(pipelines)}")
    os.makedirs(args.output_dir, exist_ok=True)
    written = [compile_pipeline(pipelines[name], os.path.join(args.output_dir, f"{name}.yaml"), args.image)
               for name in sorted(args.pipeline or pipelines)]
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
