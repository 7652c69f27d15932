"""How compiled pipelines run on a KFP cluster: images, CPU/memory requests, GPUs, tolerations, caching.

Pipeline modules only wire components; `compile.py` applies a `Deployment` to every task when it
compiles. Each component declares its resource class (components.component), and a task is configured by it:
  gpu    the GPU image, `gpu_count` accelerators, the GPU toleration, `gpu_retries` retries with backoff
  beam   the CPU image and the requests of a Beam job on the DirectRunner in the task's pod
  light  the CPU image and small requests
A component that declares no class fails compilation. Every task gets its CPU request in `TASK_CPUS` (local
Beam jobs size their worker processes by it).
"""
from __future__ import annotations

import dataclasses

from kfp import dsl, kubernetes

from beam_jobs.runner import TASK_CPUS_ENV
from components import BEAM, GPU, LIGHT, PROJECT_IMAGE_PLACEHOLDER, never_cached, resource_class_of
from pipelines import defaults
from pipelines.experiment import NestedPipeline
from pipelines.parameters import check_parameters

# (CPU, memory) requests per resource class; a Beam job on a remote runner needs little of its own pod.
DEFAULT_RESOURCES = {GPU: ("8", "32G"), BEAM: ("4", "16G"), LIGHT: ("2", "8G")}
GPU_TAINT_KEY = "nvidia.com/gpu"  # GKE (and the NVIDIA GPU operator) taint GPU nodes with this key


def function_of(container_args) -> str:
    """The Python function a lightweight component's container runs (from its `--function_to_execute`)."""
    args = list(container_args)
    return args[args.index("--function_to_execute") + 1]


@dataclasses.dataclass(frozen=True)
class Deployment:
    image: str = PROJECT_IMAGE_PLACEHOLDER
    gpu_image: str = ""  # "" = `image`
    gpu_count: int = 1  # per GPU task; 0 = train on CPU nodes
    accelerator_type: str = "nvidia.com/gpu"  # Vertex AI Pipelines takes e.g. NVIDIA_TESLA_T4 or NVIDIA_L4
    gpu_toleration: bool = True
    enable_caching: bool = True
    gpu_retries: int = 3  # retries of a GPU task (preemptible nodes), 60 s backoff doubling up to an hour
    resources: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_RESOURCES))

    def __post_init__(self):
        if self.gpu_count < 0 or self.gpu_retries < 0:
            raise ValueError(f"gpu_count and gpu_retries must be >= 0, got {self.gpu_count}, {self.gpu_retries}")
        if set(self.resources) != set(DEFAULT_RESOURCES):
            raise ValueError(f"resources must give (cpu, memory) for {sorted(DEFAULT_RESOURCES)}")

    def image_for(self, function_name: str) -> str:
        return (self.gpu_image or self.image) if resource_class_of(function_name) == GPU else self.image

    def configure(self, task: dsl.PipelineTask) -> None:
        container = task.component_spec.implementation.container
        task.set_caching_options(self.enable_caching)
        if container is None:  # a nested pipeline's task: its own tasks are configured when it is rebuilt
            return
        if never_cached(function_of(container.args)):
            task.set_caching_options(False)
        role = resource_class_of(function_of(container.args))
        cpu, memory = self.resources[role]
        task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory)
        task.set_env_variable(TASK_CPUS_ENV, cpu)  # a pod sees its node's cores: local Beam workers size by this
        if role == GPU:
            # A preempted or failed GPU pod is retried; training resumes from its last epoch from the checkpoints
            # it keeps beside the model's remote URI (keras_models.model_folder.resumable).
            task.set_retry(num_retries=self.gpu_retries, backoff_duration="60s", backoff_factor=2.0,
                           backoff_max_duration="3600s")
        if role == GPU and self.gpu_count:
            task.set_accelerator_type(self.accelerator_type).set_accelerator_limit(self.gpu_count)
            if self.gpu_toleration:
                kubernetes.add_toleration(task, key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")


def check_defaults(pipeline) -> None:
    """The pipeline's default parameters pass the checks its first task makes at run time (a required
    parameter has no default: it is checked when a run gives it)."""
    check_parameters(pipeline.name.replace("-", "_"), defaults(pipeline))


def deployed(pipeline, deployment: Deployment):
    """The pipeline rebuilt with `deployment` applied to every task (its parameters and outputs unchanged)."""
    check_defaults(pipeline)
    spec = pipeline.pipeline_spec.pipeline_info
    with NestedPipeline.rebuilt_with(deployment.configure):
        return dsl.pipeline(name=spec.name, description=spec.description)(pipeline.pipeline_func)


def set_images(documents: list[dict], deployment: Deployment) -> None:
    """Sets each executor's image in compiled YAML documents (components carry a placeholder image)."""
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container:
            container["image"] = deployment.image_for(function_of(container["args"]))
