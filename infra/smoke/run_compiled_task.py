"""Runs one compiled KFP component exactly as KFP's launcher would start its container (command + args).

    python run_compiled_task.py COMPILED_YAML COMPONENT OUTPUT_ROOT_URI [NAME=JSON_VALUE ...]

Reads the component's executor (command, args) and its input/output definitions from the compiled
pipeline, writes the executor input that the launcher would pass in `{{$}}` (parameter values from the
command line, the others' defaults from the compiled spec; each output artifact at
OUTPUT_ROOT_URI/COMPONENT/NAME, e.g. under minio://, which the component's executor maps to /minio/...),
runs the command, then checks that every output artifact was written at its local path.
Exits with the command's status, or 1 if an output is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

LAUNCHER_ROOTS = {"minio://": "/minio/", "s3://": "/s3/", "gs://": "/gcs/"}


def local_path(uri: str) -> str:
    for scheme, root in LAUNCHER_ROOTS.items():
        if uri.startswith(scheme):
            return root + uri[len(scheme):]
    raise ValueError(f"{uri} is not under one of {sorted(LAUNCHER_ROOTS)}")


def main(argv) -> int:
    compiled, component, output_root, *assignments = argv
    with open(compiled) as handle:
        spec = next(yaml.safe_load_all(handle))
    definition = spec["components"][f"comp-{component}"]
    container = spec["deploymentSpec"]["executors"][definition["executorLabel"]]["container"]
    values = {name: json.loads(value) for name, value in (item.split("=", 1) for item in assignments)}
    for name, parameter in definition.get("inputDefinitions", {}).get("parameters", {}).items():
        if name not in values and "defaultValue" in parameter:  # as KFP's driver fills them
            values[name] = parameter["defaultValue"]
    scratch = tempfile.mkdtemp(prefix="executor-")
    artifacts = {name: {"artifacts": [{"name": name, "type": {"schemaTitle": output["artifactType"]["schemaTitle"]},
                                       "uri": f"{output_root}/{component}/{name}", "metadata": {}}]}
                 for name, output in definition.get("outputDefinitions", {}).get("artifacts", {}).items()}
    parameters = {name: {"outputFile": os.path.join(scratch, name)}
                  for name in definition.get("outputDefinitions", {}).get("parameters", {})}
    executor_input = {"inputs": {"parameterValues": values},
                      "outputs": {"artifacts": artifacts, "parameters": parameters,
                                  "outputFile": os.path.join(scratch, "executor_output.json")}}
    args = [arg.replace("{{$}}", json.dumps(executor_input)) for arg in container.get("args", [])]
    print(f"running {component}: {container['command'][:2]} ... {container.get('args', [])}", flush=True)
    status = subprocess.run(container["command"] + args).returncode
    if status != 0:
        return status
    for name, output in artifacts.items():
        path = local_path(output["artifacts"][0]["uri"])
        if not os.path.exists(path):
            print(f"output {name} missing at {path}")
            return 1
        files = [os.path.join(top, file) for top, _, names in os.walk(path) for file in names] or [path]
        print(f"output {name}: {path} ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
