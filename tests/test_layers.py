"""The tree reads as the pipeline: each stage imports only the stages before it, no module
imports itself round a cycle, and torch is out of reach of screening.

Imports are read from the source (every `import`, at the top of a module or inside a
function), so a lazy import that would break a rule counts as much as an eager one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

# Lowest first: a stage may import the stages before it, never one after it.
STAGES = ("params", "scratch", "wording", "images", "data", "runtime", "scoring", "gallery", "screening", "listings", "evaluation", "model",
          "serve", "cli")
TORCH = frozenset({"torch", "torchvision", "timm", "albumentations"})
# The packages on disk: knockoff/ and the review service, installed as knockoff_serve.
ROOTS = {"knockoff": REPO / "knockoff", "knockoff_serve": REPO / "serve"}


def module_files(roots: dict[str, Path]) -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    modules = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Dotted names a module imports: `from a.b import c` gives a.b and a.b.c (c may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(roots: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between our modules, the other top-level packages each module imports)."""
    modules = module_files(roots)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in imported_names(path, name):
            if imported.split(".")[0] not in roots:
                external[name].add(imported.split(".")[0])
            elif imported in modules and imported != name:
                edges[name].add(imported)
    return edges, external


def stage_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "knockoff_serve":
        return "serve"
    if len(parts) == 1 or parts[1] == "__main__":
        return "cli"
    return parts[1]


def upward_imports(edges: dict[str, set[str]], stages: tuple[str, ...] = STAGES) -> list[str]:
    """Imports of a later stage (or of a stage the order does not know)."""
    found = []
    for module, imported in sorted(edges.items()):
        for target in sorted(imported):
            source_stage, target_stage = stage_of(module), stage_of(target)
            if source_stage not in stages or target_stage not in stages:
                found.append(f"{module} -> {target}: stage {source_stage if source_stage not in stages else target_stage} "
                             f"is not in the order")
            elif stages.index(target_stage) > stages.index(source_stage):
                found.append(f"{module} ({source_stage}) -> {target} ({target_stage})")
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def torch_paths(edges: dict[str, set[str]], external: dict[str, set[str]], start: str) -> list[str]:
    """Import chains from the modules under `start` to torch and the packages that need it."""
    found = []
    for root in sorted(m for m in edges if m == start or m.startswith(start + ".")):
        chain_to = {root: [root]}
        queue = [root]
        while queue:
            module = queue.pop(0)
            for heavy in sorted(external[module] & TORCH):
                found.append(" -> ".join([*chain_to[module], heavy]))
            for target in sorted(edges[module]):
                if target not in chain_to:
                    chain_to[target] = [*chain_to[module], target]
                    queue.append(target)
    return found


GRAPH = import_graph(ROOTS)


def test_every_stage_imports_only_the_stages_before_it():
    assert upward_imports(GRAPH[0]) == []


def test_no_module_imports_itself_round_a_cycle():
    assert cycles(GRAPH[0]) == []


def test_torch_is_out_of_reach_of_screening():
    assert torch_paths(*GRAPH, "knockoff.screening") == []


def test_every_package_says_what_its_stage_takes_and_gives():
    for folder in sorted(p for p in (REPO / "knockoff").iterdir() if (p / "__init__.py").is_file()):
        docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert docstring and len(docstring) > 100, f"{folder.name}/__init__.py needs a docstring saying what the stage takes and gives"


@pytest.fixture
def broken_tree(tmp_path: Path) -> dict[str, Path]:
    """A package with each kind of violation: images imports gallery, two data modules import
    each other, and screening reaches torch through model."""
    files = {
        "__init__.py": "",
        "images/__init__.py": "",
        "images/decode.py": "from pkg.gallery.store import Gallery\n",
        "data/__init__.py": "from pkg.data.manifest import read_manifest\n",
        "data/manifest.py": "def read_manifest():\n    from pkg.data import data_root\n",
        "gallery/__init__.py": "",
        "gallery/store.py": "import numpy\n",
        "screening/__init__.py": "",
        "screening/screen.py": "from pkg.gallery import store\n\ndef train():\n    from pkg.model import training\n",
        "model/__init__.py": "",
        "model/training.py": "import torch\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    return {"pkg": tmp_path / "pkg"}


def test_the_checks_find_each_kind_of_violation(broken_tree):
    edges, external = import_graph(broken_tree)
    assert upward_imports(edges, ("params", "images", "data", "gallery", "screening", "model", "cli")) == [
        "pkg.images.decode (images) -> pkg.gallery.store (gallery)",
        "pkg.screening.screen (screening) -> pkg.model (model)",
        "pkg.screening.screen (screening) -> pkg.model.training (model)"]
    assert cycles(edges) == [["pkg.data", "pkg.data.manifest"]]
    assert torch_paths(edges, external, "pkg.screening") == ["pkg.screening.screen -> pkg.model.training -> torch"]


def test_a_from_import_of_a_submodule_is_an_import_of_that_module(broken_tree):
    edges, _ = import_graph(broken_tree)
    assert "pkg.gallery.store" in edges["pkg.screening.screen"] and "pkg.model.training" in edges["pkg.screening.screen"]
