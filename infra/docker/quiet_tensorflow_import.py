"""Keeps TensorFlow's two import-time notices out of stderr (the images load this from a .pth file).

TensorFlow 2.21 logs through absl before absl's logging is initialised, and such lines reach stderr whatever
TF_CPP_MIN_LOG_LEVEL says (an upstream issue: abseil-cpp PR 1957): absl's "All log messages before
absl::InitializeLog() ..." warning and the "oneDNN custom operations are on" notice, each twice per process.
While `tensorflow` is first imported, file descriptor 2 goes through a pipe whose reader forwards every line
but those two to the real stderr as it arrives: anything else TensorFlow prints, errors included, still shows.
"""
import importlib.abc
import importlib.machinery
import os
import re
import sys
import threading

NOTICES = re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
                     rb"|^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. ")


class FilteredStderr:
    """Within the block, lines written to file descriptor 2 reach it unless they match NOTICES."""

    def __enter__(self):
        sys.stderr.flush()
        self._stderr = os.dup(2)
        reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self._forwarder = threading.Thread(target=self._forward, args=(reader,), daemon=True)
        self._forwarder.start()
        return self

    def _forward(self, reader: int) -> None:
        with os.fdopen(reader, "rb") as lines:
            for line in lines:
                if not NOTICES.match(line.rstrip(b"\n")):
                    os.write(self._stderr, line)

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self._stderr, 2)  # closes the pipe's last writer: the forwarder reads to its end and stops
        self._forwarder.join(timeout=10)
        os.close(self._stderr)
        return False


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader
        with FilteredStderr():
            self._loader.exec_module(module)


class _QuietFirstTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietFirstTensorFlowImport())
