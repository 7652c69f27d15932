"""The compiled pipelines keep their interface: parameters (type and default), outputs, and every task with
where each of its inputs comes from, as tests/data/compiled_interfaces.json records it. A change to a pipeline's
interface is deliberate: regenerate the file and say why in the commit.

    .venv/bin/python pipelines/compile.py --output-dir /tmp/compiled
    .venv/bin/python tests/compiled_interface.py /tmp/compiled > tests/data/compiled_interfaces.json
"""
import json
import pathlib

import pytest

from compiled_interface import interfaces
from pipelines import compile as compile_module

RECORDED = pathlib.Path(__file__).parent / "data" / "compiled_interfaces.json"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("compiled")
    compile_module.main(["--output-dir", str(output)])
    return interfaces(output)


def test_every_pipeline_keeps_its_recorded_parameters_task_graph_and_outputs(compiled):
    recorded = json.loads(RECORDED.read_text())
    assert sorted(recorded) == sorted(compiled)
    for name in sorted(recorded):
        assert compiled[name] == recorded[name], name


def test_the_comparison_sees_a_rewired_input_and_a_changed_default(compiled):
    recorded = json.loads(RECORDED.read_text())
    rewired = json.loads(json.dumps(compiled["fsd50k_baseline"]).replace('"param:epochs"', '"param:width"'))
    assert rewired != recorded["fsd50k_baseline"]
    changed = json.loads(json.dumps(compiled["noisy_labels"]))
    changed["parameters"]["discard_percentile"]["default"] = 96.0
    assert changed != recorded["noisy_labels"]


def test_the_recorded_defaults_are_the_published_ones():
    # docs/recipes.md: a few of the recipe's values, as the compiled pipelines carry them
    recorded = json.loads(RECORDED.read_text())
    assert recorded["noisy_labels"]["parameters"]["aggregation"]["default"] == "geometric_mean"
    assert recorded["dcase2019_task2"]["parameters"]["architecture"]["default"] == "mobilenet_v1"
    assert recorded["contrastive_ssl"]["parameters"]["pretrain_epochs"]["default"] == 500
