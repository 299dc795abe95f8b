"""Imports follow the pipeline: no module imports a later stage, and no two modules import each other.

Every ``import`` of a ``brainlike`` module in src/brainlike is read from the source (at module level or inside a
function: a lazy import is still a dependency). The stages, in pipeline order::

    foundations (errors, config, progress, integrity, plugins, results, executors) -> data -> models -> extract -> align
    -> downstream -> report -> api -> pretrain -> study -> cli

A module may import its own stage and earlier ones (exceptions would be listed in ``BACKWARD`` with their reason).
Inside one stage, the import graph has no cycle, except an adapter and its network module
(``models/<family>.py`` imports ``models/nets/<family>.py`` when a model is built; the network module reads the
adapter's constants), which ``ADAPTER_NETWORK`` describes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "brainlike"

STAGES = [
    {"brainlike", "errors", "config", "progress", "integrity", "plugins", "results", "executors"},
    {"data"},
    {"models", "hear_api"},
    {"extract"},
    {"align"},
    {"downstream"},
    {"report"},
    {"api"},
    {"pretrain"},
    {"study"},
    {"cli", "__main__"},
]
STAGE_NAMES = ["foundations", "data", "models", "extract", "align", "downstream", "report", "api", "pretrain",
               "study", "cli"]

BACKWARD: dict[tuple[str, str], str] = {}
"""Reviewed imports of a later stage: (importer, imported) -> reason. None today: the callable subpackages
(``brainlike.downstream(...)``, ``brainlike.extract(...)``) reach ``brainlike.api`` through the top-level package."""

ADAPTER_NETWORK = re.compile(r"brainlike\.models\.(?:\w+\.)?(\w+)$")


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path = SRC) -> dict[str, set[str]]:
    """{module: brainlike modules it imports} for every module under ``root`` (submodules resolved)."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def stage(module: str) -> int:
    head = module.split(".")[1] if "." in module else module
    return next(i for i, names in enumerate(STAGES) if head in names)


def backward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({STAGE_NAMES[stage(a)]}) imports {b} ({STAGE_NAMES[stage(b)]})"
                  for a, targets in graph.items() for b in targets
                  if stage(b) > stage(a) and (a, b) not in BACKWARD)


def is_adapter_network_pair(a: str, b: str) -> bool:
    """``brainlike.models.[pkg.]X`` and ``brainlike.models.nets.X``."""
    first, second = sorted((a, b), key=lambda m: ".nets." in m)
    match = ADAPTER_NETWORK.match(first)
    return bool(match) and ".nets." not in first and second == f"brainlike.models.nets.{match.group(1)}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def unexpected_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    return [c for c in cycles(graph) if not (len(c) == 2 and is_adapter_network_pair(*c))]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return imports()


def test_every_module_has_a_stage(graph):
    for module in graph:
        stage(module)  # raises StopIteration for a new top-level module without a stage


def test_no_module_imports_a_later_stage(graph):
    problems = backward_imports(graph)
    assert not problems, "imports against the pipeline:\n" + "\n".join(problems)


def test_backward_exceptions_are_still_needed(graph):
    for importer, imported in BACKWARD:
        assert imported in graph[importer], f"stale exception: {importer} no longer imports {imported}"


def test_no_import_cycles(graph):
    found = unexpected_cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checks_catch_a_backward_import_and_a_cycle(tmp_path):
    """Mutation check on a copy of the tree: models importing pretrain, and data/neural <-> data/custom."""
    import shutil

    copy = tmp_path / "brainlike"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "resources"))
    mae = copy / "models" / "mae.py"
    mae.write_text(mae.read_text() + "\n\ndef _late():\n    from brainlike.pretrain.presets import preset\n")
    neural = copy / "data" / "neural.py"
    neural.write_text(neural.read_text() + "\n\ndef _late():\n    from brainlike.data.custom import load_dataset_file\n")
    mutated = imports(copy)
    assert backward_imports(mutated) == ["brainlike.models.mae (models) imports brainlike.pretrain.presets (pretrain)"]
    assert ["brainlike.data.custom", "brainlike.data.neural"] in unexpected_cycles(mutated)
