"""`experiment`: dsl.pipeline for the experiments, with a first task that checks every parameter of the run
(components.checks) before any other task starts."""
from __future__ import annotations

import functools
import inspect

from kfp import dsl
from kfp.dsl import pipeline_context

from components.checks import parameter_check


def experiment(name: str, description: str):
    def decorate(function):
        signature = inspect.signature(function)
        check = parameter_check(function.__name__, signature)

        @functools.wraps(function)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_task = check(**bound.arguments)
            check_task.set_display_name("check parameters")
            outputs = function(*args, **kwargs)
            for task in pipeline_context.Pipeline.get_default_pipeline().tasks.values():
                upstream = {channel.task_name for channel in task.channel_inputs if channel.task_name}
                if task is not check_task and not upstream and not task.dependent_tasks:
                    task.after(check_task)  # every other task waits for one of these
            return outputs

        return dsl.pipeline(name=name, description=description)(checked)

    return decorate
