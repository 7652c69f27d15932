"""Draws each compiled pipeline's task graph (Graphviz): a box per task, an arrow per artifact one task passes
to another, a frame per nested pipeline and per loop.

    python pipelines/draw.py [--compiled DIR] [--output-dir docs/pipelines] [--pipeline NAME ...]
    python pipelines/draw.py --run runs/fsd50k-baseline-... --output-dir docs/pictures

Compiles the pipelines (or reads `--compiled`'s YAML), writes `<pipeline>.dot`, and `<pipeline>.svg` where
Graphviz's `dot` is installed (Debian: `apt-get install graphviz`). With `--run`, instead saves the plots of a
local run's HTML pages (training curves, per-class AP, ...) as `<task>-<output>-<n>.png`.
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _in_dependency_order(tasks: dict) -> list[tuple[str, dict]]:
    """The DAG's tasks, each after those it depends on (a loop's inputs are drawn before the loop)."""
    ordered, done = [], set()

    def visit(key):
        if key not in done:
            done.add(key)
            for upstream in tasks[key].get("dependentTasks", []):
                visit(upstream)
            ordered.append((key, tasks[key]))

    for key in sorted(tasks):
        visit(key)
    return ordered


class _Graph:
    def __init__(self, document: dict):
        self.components = document["components"]
        self.lines: list[str] = []
        self.edges: set[tuple[str, str]] = set()
        self.waits: set[tuple[str, str, str]] = set()  # (task, the task it waits for, the frame it heads)

    def walk(self, dag: dict, path: str, scope: dict, indent: str) -> dict:
        """Draws `dag`'s tasks; returns {task key: its node, or for a nested DAG {output: producing node}}."""
        nodes = {}
        for key, task in _in_dependency_order(dag.get("tasks", {})):
            component = self.components[task["componentRef"]["name"]]
            node = f"{path}/{key}"
            if "dag" in component:  # a nested pipeline or a loop: a frame around its tasks
                iterator = task.get("parameterIterator", {}).get("items", {}).get("inputParameter", "")
                title = f"for each of {iterator.replace('pipelinechannel--', '')}" if iterator else task["taskInfo"]["name"]
                self.lines.append(f'{indent}subgraph "cluster_{node}" {{')
                self.lines.append(f'{indent}  label="{title}"; style=rounded; color=grey50; fontcolor=grey30;')
                inner_scope = {name: self._source(spec, nodes, scope)
                               for name, spec in task.get("inputs", {}).get("artifacts", {}).items()}
                inner = self.walk(component["dag"], node, inner_scope, indent + "  ")
                self.lines.append(f"{indent}}}")
                outputs = component["dag"].get("outputs", {}).get("artifacts", {})
                nodes[key] = {name: self._resolve(inner, selector["artifactSelectors"][0])
                              for name, selector in outputs.items()}
            else:
                label = task["taskInfo"]["name"]
                self.lines.append(f'{indent}"{node}" [label="{label}"];')
                nodes[key] = node
        for key, task in dag.get("tasks", {}).items():
            if isinstance(nodes[key], str):
                for spec in task.get("inputs", {}).get("artifacts", {}).values():
                    source = self._source(spec, nodes, scope)
                    if source:
                        self.edges.add((source, nodes[key]))
            for upstream in task.get("dependentTasks", []):  # waits without an artifact: the parameter check
                if isinstance(nodes[upstream], str) and not task.get("inputs", {}).get("artifacts"):
                    target = nodes[key] if isinstance(nodes[key], str) else next(iter(nodes[key].values()))
                    frame = "" if isinstance(nodes[key], str) else f"cluster_{path}/{key}"
                    self.waits.add((nodes[upstream], target, frame))
        return nodes

    @staticmethod
    def _resolve(nodes: dict, selector: dict) -> str:
        found = nodes[selector["producerSubtask"]]
        return found if isinstance(found, str) else found[selector["outputArtifactKey"]]

    def _source(self, spec: dict, nodes: dict, scope: dict) -> str:
        if "taskOutputArtifact" in spec:
            output = spec["taskOutputArtifact"]
            found = nodes.get(output["producerTask"])
            return found if isinstance(found, str) or found is None else found.get(output["outputArtifactKey"], "")
        return scope.get(spec.get("componentInputArtifact", ""), "")


def dot_source(document: dict) -> str:
    """Graphviz source of one compiled pipeline document."""
    graph = _Graph(document)
    graph.walk(document["root"]["dag"], "root", {}, "  ")
    name = document["pipelineInfo"]["name"]
    header = [f'digraph "{name}" {{', "  rankdir=TB; compound=true;",
              '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=11];',
              '  graph [fontname="Helvetica", fontsize=11];']
    edges = [f'  "{source}" -> "{target}";' for source, target in sorted(graph.edges)]
    for source, target, frame in sorted(graph.waits):
        head = f', lhead="{frame}"' if frame else ""
        edges.append(f'  "{source}" -> "{target}" [style=dashed{head}];')
    return "\n".join(header + graph.lines + edges + ["}"]) + "\n"


def draw(compiled_dir: str, output_dir: str, names: list[str]) -> list[str]:
    """Writes <name>.dot (and <name>.svg where Graphviz is installed) for each compiled pipeline; returns them."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name in names:
        with open(os.path.join(compiled_dir, f"{name}.yaml")) as handle:
            document = next(yaml.safe_load_all(handle))
        dot_path = os.path.join(output_dir, f"{name}.dot")
        with open(dot_path, "w") as handle:
            handle.write(dot_source(document))
        written.append(dot_path)
        if shutil.which("dot"):
            svg_path = os.path.join(output_dir, f"{name}.svg")
            subprocess.run(["dot", "-Tsvg", dot_path, "-o", svg_path], check=True)
            written.append(svg_path)
    return written


INLINE_PNG = re.compile(rb"""src=["']data:image/png;base64,([A-Za-z0-9+/=]+)["']""")


def run_pictures(run_dir: str, output_dir: str) -> list[str]:
    """The PNG plots inlined in a local run's HTML artifacts (<task>/<output> files), one file each."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for task in sorted(os.listdir(run_dir)):
        task_dir = os.path.join(run_dir, task)
        for output in sorted(os.listdir(task_dir)) if os.path.isdir(task_dir) else []:
            path = os.path.join(task_dir, output)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                content = handle.read()
            for number, match in enumerate(INLINE_PNG.finditer(content), start=1):
                picture = os.path.join(output_dir, f"{task}-{output}-{number}.png")
                with open(picture, "wb") as handle:
                    handle.write(base64.b64decode(match.group(1)))
                written.append(picture)
    return written


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compiled", default="", help="a folder of compiled YAML (default: compile them now)")
    parser.add_argument("--output-dir", default=os.path.join(REPOSITORY_ROOT, "docs", "pipelines"))
    parser.add_argument("--pipeline", action="append", help="draw only these (default: all)")
    parser.add_argument("--run", default="", help="save the plots of this local run's HTML pages instead")
    args = parser.parse_args(argv)
    if args.run:
        written = run_pictures(args.run, args.output_dir)
        print("\n".join(written))
        return written
    sys.path.insert(0, REPOSITORY_ROOT)
    from pipelines import compile as compile_module
    from pipelines import discover

    names = sorted(args.pipeline or discover())
    compiled = args.compiled or tempfile.mkdtemp(prefix="compiled-")
    if not args.compiled:
        compile_module.main(["--output-dir", compiled, *[f"--pipeline={name}" for name in names]])
    written = draw(compiled, args.output_dir, names)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
