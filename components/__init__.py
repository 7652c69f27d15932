"""KFP components: thin shells whose bodies call beam_jobs/ and keras_models/.

Every component is declared with `component(resource_class)`: the class is what pipelines/deployment.py
sizes its tasks by (image, CPU/memory, GPUs), and a component that declares none fails compilation.
A component that runs a Beam job takes both runner settings (`beam_runner`, `beam_options`:
beam_jobs.runner.BeamSettings) and is a `beam` one, or a `gpu` one where the job runs a model. Pipelines never
pass the runner settings by hand: inside `runner_settings(...)` (which every pipeline of pipelines/ opens with its
own two runner parameters) a call that leaves them out gets them.

Every component's `base_image` is a placeholder replaced at compile time by `pipelines/compile.py
--image` / `--gpu-image` (the project images hold the whole repository installed, so bodies import it
directly). `install_kfp_package=False` because that image already has the pinned kfp.
"""
import contextlib
import contextvars
import inspect

from kfp import dsl
from kfp.dsl.python_component import PythonComponent

PROJECT_IMAGE_PLACEHOLDER = "sound-event-classifiers:latest"

GPU, BEAM, LIGHT = "gpu", "beam", "light"
RESOURCE_CLASSES = {
    GPU: "training, fine-tuning, pretraining, model scoring: the GPU image and accelerators",
    BEAM: "Beam jobs, on the DirectRunner in the task's pod or submitted to a remote runner",
    LIGHT: "evaluation, splits and summaries",
}
BEAM_SETTINGS = ("beam_runner", "beam_options")
_declared: dict[str, str] = {}
_never_cached: set[str] = set()  # components whose result depends on more than their inputs (pipelines/deployment)
_runner_settings: contextvars.ContextVar[dict] = contextvars.ContextVar("runner_settings", default={})
_task_hooks: contextvars.ContextVar[tuple] = contextvars.ContextVar("task_hooks", default=())


@contextlib.contextmanager
def _set(variable: contextvars.ContextVar, value):
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def runner_settings(beam_runner, beam_options):
    """While open, every call of a Beam job's component (or of a nested pipeline that takes the runner settings)
    that does not give them gets these: a pipeline's own `beam_runner`/`beam_options` parameters."""
    return _set(_runner_settings, {"beam_runner": beam_runner, "beam_options": beam_options})


def configuring_tasks(hook):
    """While open, every task a component call creates is passed to `hook` (pipelines/deployment.py sizes
    tasks this way, the tasks of nested pipelines included)."""
    return _set(_task_hooks, (*_task_hooks.get(), hook))


def with_runner_settings(inputs, arguments: dict) -> dict:
    """`arguments` with the open runner settings added for those of `inputs` that it does not give."""
    return {**{name: value for name, value in _runner_settings.get().items() if name in inputs}, **arguments}


def configure(task):
    for hook in _task_hooks.get():
        hook(task)
    return task


class ProjectComponent(PythonComponent):
    """A component of this project: called inside `runner_settings`, a Beam job's component needs no runner
    arguments; inside `configuring_tasks`, its task is configured."""

    def __call__(self, *args, **kwargs):
        task = super().__call__(*args, **with_runner_settings(self.component_spec.inputs, kwargs))
        if never_cached(self.python_func.__name__):
            task.set_caching_options(False)
        return configure(task)


def component(resource_class: str, checks_parameters: bool = False, cached: bool = True):
    """Declares a KFP component and its resource class (`checks_parameters`: a pipeline's parameter check,
    which takes the runner settings to check them, not to run a job; `cached=False`: a task whose result
    depends on more than its inputs, e.g. on the files under a location, which KFP's cache must never serve)."""
    if resource_class not in RESOURCE_CLASSES:
        raise ValueError(f"unknown resource class {resource_class!r}; expected one of {sorted(RESOURCE_CLASSES)}")

    def declare(function):
        name = function.__name__
        settings = set(BEAM_SETTINGS) & set(inspect.signature(function).parameters)
        wrong = ((resource_class == BEAM and len(settings) < 2) or (resource_class == LIGHT and settings)
                 or len(settings) == 1)
        if wrong and not checks_parameters:
            raise TypeError(f"component {name} ({resource_class}) takes {sorted(settings)}: a Beam job's component "
                            f"takes both of {BEAM_SETTINGS} and is `{BEAM}` (or `{GPU}`, running a model); no other "
                            f"does")
        if _declared.get(name, resource_class) != resource_class:
            raise ValueError(f"component {name} is declared twice with different resource classes")
        _declared[name] = resource_class
        if not cached:
            _never_cached.add(name)
        declared = dsl.component(base_image=PROJECT_IMAGE_PLACEHOLDER, install_kfp_package=False)(function)
        return ProjectComponent(component_spec=declared.component_spec, python_func=declared.python_func)

    return declare


def never_cached(function_name: str) -> bool:
    return function_name in _never_cached


def resource_class_of(function_name: str) -> str:
    """The declared resource class of the component that runs `function_name`."""
    if function_name not in _declared:
        raise ValueError(f"component {function_name!r} declares no resource class: define it with "
                         f"components.component({'|'.join(RESOURCE_CLASSES)})")
    return _declared[function_name]
