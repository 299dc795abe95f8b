"""The declared public API: keyword-only options, full numpydoc, ``__all__`` everywhere, docs/api.md complete, and
docstrings that cite docs/contracts.md sections that exist."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import brainlike

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "brainlike"
API_DOC = (ROOT / "docs" / "api.md").read_text()
CONTRACTS = (ROOT / "docs" / "contracts.md").read_text()

FUNCTIONS = ["score", "extract", "downstream", "link", "compare", "similarity", "ceiling", "load_study", "run_study",
             "make_report"]
"""The functions of ``brainlike.__all__`` (``Results`` is the class)."""

POSITIONAL = {"score": {"models"}, "extract": {"model", "stimuli"}, "downstream": {"models"},
              "link": {"results"}, "compare": {"results", "models"}, "similarity": {"feature_sets"},
              "ceiling": {"dataset"}, "load_study": {"path"},
              "run_study": {"study"}, "make_report": {"results_dirs"}}
"""What each function takes positionally (the data it works on); every option after them is keyword-only."""


def api_function(name: str):
    if name in ("downstream", "extract"):  # callable subpackages; the functions are in brainlike.api
        from brainlike import api

        return getattr(api, name)
    return getattr(brainlike, name)


@pytest.mark.parametrize("name", ["downstream", "extract"])
def test_subpackages_named_like_api_functions_stay_callable(name, monkeypatch):
    """Once the subpackage is imported, ``brainlike.<name>`` is the module: calling it must still call the API."""
    import importlib

    from brainlike import api

    module = importlib.import_module(f"brainlike.{name}")
    assert getattr(brainlike, name) is module
    monkeypatch.setattr(api, name, lambda *args, **kwargs: (name, args, kwargs))
    assert getattr(brainlike, name)("melspec", progress=False) == (name, ("melspec",), {"progress": False})


def numpydoc_sections(doc: str) -> dict[str, str]:
    """``{section title: body}`` of a numpydoc docstring (titles underlined with dashes)."""
    doc = inspect.cleandoc(doc)
    parts = re.split(r"^(\w[\w ]*)\n-{3,}\n", doc, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def documented_parameters(section: str) -> set[str]:
    names = set()
    for line in section.splitlines():
        match = re.match(r"^(\*{0,2}[\w, *]+?)\s*(?::|$)", line)
        if match and not line.startswith(" "):
            names |= {n.strip().lstrip("*") for n in match.group(1).split(",")}
    return names


def test_all_lists_the_api():
    assert set(FUNCTIONS) | {"Results", "__version__"} == set(brainlike.__all__)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_options_are_keyword_only(name):
    signature = inspect.signature(api_function(name))
    for parameter in signature.parameters.values():
        if parameter.name in POSITIONAL[name]:
            continue
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: option {parameter.name!r} is positional"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_full_numpydoc(name):
    function = api_function(name)
    sections = numpydoc_sections(function.__doc__ or "")
    assert {"Parameters", "Returns"} <= set(sections), f"{name}: sections {sorted(sections)}"
    expected = set(inspect.signature(function).parameters) - {"argv"}
    missing = expected - documented_parameters(sections["Parameters"])
    assert not missing, f"{name}: parameters without documentation: {sorted(missing)}"


@pytest.mark.parametrize("name", FUNCTIONS + ["Results"])
def test_api_md_documents_each_name_with_signature_and_example(name):
    heading = re.search(rf"^### `brainlike\.{name}\b(.*)`$", API_DOC, flags=re.MULTILINE)
    assert heading, f"docs/api.md has no '### `brainlike.{name}(...)`' entry"
    entry = API_DOC[heading.end():].split("\n### ", 1)[0]
    documented = heading.group(1)
    for parameter in inspect.signature(api_function(name) if name != "Results" else brainlike.Results).parameters:
        if parameter != "argv":
            assert parameter in documented, f"docs/api.md: {name} signature lacks {parameter!r}"
    assert "```python" in entry, f"docs/api.md: {name} has no example"


def _modules_that_need_all() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if p.name != "__main__.py"
            and not (p.parent.name == "cli" and p.name != "__init__.py")]


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


@pytest.mark.parametrize("path", _modules_that_need_all(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_every_subpackage_and_public_module_declares_all(path):
    tree = ast.parse(path.read_text())
    declared = next((node.value for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                     and any(getattr(t, "id", None) == "__all__"
                             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))), None)
    assert declared is not None, "no __all__"
    names = ast.literal_eval(declared)
    submodules = {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
    available = _defined(tree) | (submodules if path.name == "__init__.py" else set())
    if path == SRC / "__init__.py":  # the top level imports its names on first use
        available |= set(brainlike._API)
    assert not set(names) - available, f"__all__ names that do not exist: {sorted(set(names) - available)}"


def test_docstrings_cite_sections_of_docs_contracts():
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", CONTRACTS, flags=re.MULTILINE)}
    assert sections >= set(range(1, 11))
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"([\w/.]*)contracts\.md(?: (?:section|sections) ([\d, and]+))?", text):
            cited = {int(n) for n in re.findall(r"\d+", match.group(2) or "")}
            if match.group(1) != "docs/" or not cited or not cited <= sections:
                bad.append(f"{path.relative_to(SRC)}: {match.group(0)!r}")
    assert not bad, "citations of contracts.md must be 'docs/contracts.md section N' with N in the document:\n" + \
        "\n".join(bad)
