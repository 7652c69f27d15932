"""AudioSet-schema ontology (`ontology.json`: a list of {id, name, child_ids, restrictions, ...}) and label
propagation. AudioSet marks some classes `abstract` (groupings never used as labels) or `blacklist`
(too ambiguous to label): `labelable` is false for them."""
from __future__ import annotations

import json

from beam_jobs.contracts.manifest import DatasetError
from beam_jobs.contracts.storage import read_text


class Ontology:
    def __init__(self, entries: list[dict], source: str = "ontology.json"):
        self.source = source
        self.names = {}
        self.children = {}
        self.restrictions = {}
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry or "child_ids" not in entry:
                raise DatasetError(f"{source}: entry {position} lacks 'id' or 'child_ids': {str(entry)[:80]}")
            self.names[entry["id"]] = entry.get("name", entry["id"])
            self.children[entry["id"]] = list(entry["child_ids"])
            self.restrictions[entry["id"]] = frozenset(entry.get("restrictions") or ())
        for node, children in self.children.items():
            unknown = [child for child in children if child not in self.children]
            if unknown:
                raise DatasetError(f"{source}: {node} lists unknown child ids {unknown}")
        self.parents = {node: [] for node in self.children}
        for node, children in self.children.items():
            for child in children:
                self.parents[child].append(node)
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        state = {}  # node -> 1 while on the DFS path, 2 when done

        def visit(node, path):
            state[node] = 1
            for child in self.children[node]:
                if state.get(child) == 1:
                    cycle = path[path.index(child):] + [child]
                    raise DatasetError(f"{self.source}: cycle in the ontology: {' -> '.join(cycle)}")
                if child not in state:
                    visit(child, path + [child])
            state[node] = 2

        for node in self.children:
            if node not in state:
                visit(node, [node])

    def labelable(self, node: str) -> bool:
        return not self.restrictions[node] & {"abstract", "blacklist"}

    def ancestors(self, node: str) -> set[str]:
        found, stack = set(), list(self.parents.get(node, ()))
        while stack:
            parent = stack.pop()
            if parent not in found:
                found.add(parent)
                stack.extend(self.parents[parent])
        return found

    def propagate(self, mids: tuple[str, ...], vocabulary_mids: set[str]) -> set[str]:
        """The given ids plus every ancestor of theirs that is in the vocabulary."""
        result = set(mids)
        for mid in mids:
            result |= self.ancestors(mid) & vocabulary_mids
        return result


def load_ontology(path: str) -> Ontology:
    try:
        entries = json.loads(read_text(path))
    except ValueError as error:
        raise DatasetError(f"{path}: malformed JSON: {error}") from error
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a list of ontology entries")
    return Ontology(entries, path)


def propagate_labels(labels: tuple[str, ...], label_to_mid: dict[str, str], ontology: Ontology) -> tuple[str, ...]:
    """Leaf labels -> labels with their in-vocabulary ancestors, in vocabulary order."""
    mid_to_label = {mid: label for label, mid in label_to_mid.items()}
    mids = ontology.propagate(tuple(label_to_mid[label] for label in labels), set(mid_to_label))
    return tuple(label for label in label_to_mid if label_to_mid[label] in mids)
