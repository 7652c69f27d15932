"""The first task of every pipeline: a component that takes exactly the pipeline's parameters and checks
them all (beam_jobs.pipeline_parameters) before any other task starts."""
import inspect
import linecache

from components import LIGHT, component

TYPES = ("int", "float", "str", "bool", "list", "dict")


def parameter_check(pipeline_name: str, signature: inspect.Signature):
    """The check component of a pipeline, generated from its signature (names, types and defaults), so it
    can never drift from the pipeline it guards."""
    arguments = []
    for parameter in signature.parameters.values():
        annotation = getattr(parameter.annotation, "__name__", parameter.annotation)
        if annotation not in TYPES:
            raise TypeError(f"pipeline {pipeline_name}: parameter {parameter.name} of type {annotation}; "
                            f"expected one of {TYPES}")
        required = parameter.default is inspect.Parameter.empty
        arguments.append(f"{parameter.name}: {annotation}" + ("" if required else f" = {parameter.default!r}"))
    function_name = f"check_{pipeline_name}_parameters"
    source = (f"def {function_name}({', '.join(arguments)}):\n"
              f'    """Fails the run before any work when a parameter of {pipeline_name} is invalid."""\n'
              f"    values = dict(locals())\n"
              f"    from beam_jobs.pipeline_parameters import check_parameters\n\n"
              f"    check_parameters({pipeline_name!r}, values)\n")
    filename = f"<parameter check of {pipeline_name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # KFP reads the source
    namespace = {}
    exec(compile(source, filename, "exec"), namespace)
    return component(LIGHT, checks_parameters=True)(namespace[function_name])
