"""A compiled pipeline's interface, independent of how its Python is organised: the parameters (type and
default), the outputs, and every container task with where each of its inputs comes from, resolved through
nested pipelines and loops to a pipeline parameter, a constant, a loop item or another task's output.

    python tests/compiled_interface.py COMPILED_DIR > FILE.json   (what tests/data/ holds)
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")


def display_name(key: str, task: dict) -> str:
    """The name a task shows in the UI; a default one (the task's key) without the -N that KFP appends to the
    second task of a component in one DAG, which depends on how the pipeline is nested."""
    name = task["taskInfo"]["name"]
    return re.sub(r"-\d+$", "", name) if name == key else name


class _Resolver:
    def __init__(self, document: dict):
        self.components = document["components"]
        self.executors = document["deploymentSpec"]["executors"]
        self.tasks: list[dict] = []

    def function(self, component_name: str) -> str | None:
        executor = self.components[component_name].get("executorLabel")
        container = self.executors.get(executor, {}).get("container") if executor else None
        if container is None:
            return None if executor is None else "importer"
        args = container["args"]
        return args[args.index("--function_to_execute") + 1]

    def walk(self, dag: dict, scope: dict, loop_items: dict) -> None:
        """Records the container tasks of `dag` and of the nested pipelines and loops in it."""
        labels = {key: self._label(key, task) for key, task in dag.get("tasks", {}).items()}
        for key, task in dag.get("tasks", {}).items():
            name = task["componentRef"]["name"]
            inputs = self._inputs(task, (dag, scope, loop_items, labels))
            function = self.function(name)
            if function is not None:
                own = {input_: source for input_, source in inputs.items() if not input_.startswith("pipelinechannel--")}
                self.tasks.append({"function": function, "name": display_name(key, task), "inputs": own})
            else:  # a nested pipeline or a loop: its inputs are its tasks' scope
                items = dict(loop_items)
                iterator = task.get("parameterIterator")
                if iterator:
                    items[iterator["itemInput"]] = f"loop({inputs[iterator['items']['inputParameter']]})"
                self.walk(self.components[name]["dag"], inputs, items)

    def _label(self, key: str, task: dict) -> str:
        function = self.function(task["componentRef"]["name"])
        return f"{function or task['componentRef']['name']}/{display_name(key, task)}"

    def _source(self, spec: dict, context) -> str:
        dag, scope, loop_items, labels = context
        if "componentInputParameter" in spec or "componentInputArtifact" in spec:
            name = spec.get("componentInputParameter") or spec.get("componentInputArtifact")
            source = loop_items[name] if name in loop_items else scope.get(name, f"param:{name}")
            selector = spec.get("parameterExpressionSelector")
            return f"{source}{selector.split('string_value)')[-1]}" if selector else source
        if "taskOutputArtifact" in spec or "taskOutputParameter" in spec:
            output = spec.get("taskOutputArtifact") or spec.get("taskOutputParameter")
            key = output.get("outputArtifactKey") or output.get("outputParameterKey")
            return self._output(context, output["producerTask"], key)
        if "runtimeValue" in spec:
            return "const:" + json.dumps(spec["runtimeValue"]["constant"], sort_keys=True)
        raise ValueError(f"unknown input source {spec}")

    def _output(self, context, producer: str, key: str) -> str:
        dag, _, loop_items, labels = context
        task = dag["tasks"][producer]
        component = self.components[task["componentRef"]["name"]]
        if self.function(task["componentRef"]["name"]) is not None:
            return f"task:{labels[producer]}.{key}"
        inner = component["dag"]
        outputs = inner.get("outputs", {})
        selector = (outputs.get("artifacts", {}).get(key, {}).get("artifactSelectors")
                    or [outputs.get("parameters", {}).get(key, {}).get("valueFromParameter")])[0]
        inner_producer = selector.get("producerSubtask")
        inner_key = selector.get("outputArtifactKey") or selector.get("outputParameterKey")
        inner_labels = {k: self._label(k, t) for k, t in inner["tasks"].items()}
        inner_scope = self._inputs(task, context)
        collected = "parameterIterator" in task
        source = self._output((inner, inner_scope, loop_items, inner_labels), inner_producer, inner_key)
        return f"collected({source})" if collected else source

    def _inputs(self, task: dict, context) -> dict:
        inputs = {}
        for kind in ("parameters", "artifacts"):
            for name, spec in task.get("inputs", {}).get(kind, {}).items():
                inputs[name] = self._source(spec, context)
        for name, value in list(inputs.items()):  # channels inside dict/list constants
            inputs[name] = PLACEHOLDER.sub(lambda match: "<" + inputs.get(match[1], match[1]) + ">", value)
        return inputs


def interface(path) -> dict:
    with open(path) as handle:
        document = next(yaml.safe_load_all(handle))
    resolver = _Resolver(document)
    resolver.walk(document["root"]["dag"], {}, {})
    root = document["root"]
    parameters = {name: {"type": spec["parameterType"], "default": spec.get("defaultValue")}
                  for name, spec in root.get("inputDefinitions", {}).get("parameters", {}).items()}
    outputs = {name: spec["artifactType"]["schemaTitle"]
               for name, spec in root.get("outputDefinitions", {}).get("artifacts", {}).items()}
    tasks = sorted(resolver.tasks, key=lambda task: json.dumps(task, sort_keys=True))
    return {"parameters": parameters, "outputs": outputs, "tasks": tasks}


def interfaces(directory) -> dict:
    return {path.stem: interface(path) for path in sorted(Path(directory).glob("*.yaml"))}


if __name__ == "__main__":
    json.dump(interfaces(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
