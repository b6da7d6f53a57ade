"""The walls of ARCHITECTURE.md: each package imports only from its own package or the layers
below it, no module imports itself back through a cycle, and no private name crosses packages.

The imports are read with ``ast`` from every module of ``brandstudio/``, including imports
inside functions, so a lazy import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "brandstudio"

#: ARCHITECTURE.md's layers, top first; names on one row never import each other
LAYERS: list[tuple[str, ...]] = [
    ("brandstudio", "cli"),
    ("campaign", "app"),
    ("distributed",),
    ("studio",),
    ("batch",),
    ("qc", "provenance"),
    ("encode",),
    ("safety", "style"),
    ("post", "audio"),
    ("generation",),
    ("prompts",),
    ("request",),
    ("profile",),
    ("deliveries", "errors", "files", "frames", "logs", "media", "progress", "rates", "registry", "textmatch", "weights", "_version"),
]
RANK = {unit: rank for rank, row in enumerate(LAYERS) for unit in row}
#: core modules may import each other, in this order (errors first)
CORE = ("_version", "logs", "errors", "rates", "registry", "deliveries", "progress", "frames", "files", "media", "textmatch", "weights")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _unit(module: str) -> str:
    """The layer unit of a module: its top-level package or module under brandstudio."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "brandstudio"


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for every brandstudio import in ``module``."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("brandstudio"):
                    found.append((alias.name, [], node.lineno))
            continue
        else:
            continue
        if target == "brandstudio" or target.startswith("brandstudio."):
            # `from . import post` imports the module brandstudio.post
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            others = [n for n in names if f"{target}.{n}" not in MODULES]
            if others or not subs:
                found.append((target, others, node.lineno))
            found.extend((sub, [], node.lineno) for sub in subs)
    return found


EDGES = [(m, target, names, line) for m, path in MODULES.items() for target, names, line in _imports(m, path)]


def test_every_module_belongs_to_a_layer():
    assert not sorted({_unit(m) for m in MODULES} - set(RANK)), "add the new package to LAYERS and ARCHITECTURE.md"


def test_the_architecture_document_states_these_layers():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for row in LAYERS:
        for unit in row:
            if unit not in ("brandstudio", "_version"):
                assert re.search(rf"\b{re.escape(unit)}\b", text), f"ARCHITECTURE.md does not mention {unit}"


def test_no_package_imports_upward_or_sideways():
    wrong = []
    for module, target, _, line in EDGES:
        a, b = _unit(module), _unit(target)
        if a == b:
            continue
        if a in CORE and b in CORE:
            if CORE.index(b) >= CORE.index(a):
                wrong.append(f"{module}:{line} imports {target} (core modules import only those before them)")
            continue
        if RANK[b] <= RANK[a]:
            where = "sideways" if RANK[b] == RANK[a] else "upward"
            wrong.append(f"{module}:{line} imports {target} ({where}: {a} -> {b})")
    assert not wrong, "imports that cross ARCHITECTURE.md's layers:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, _, _ in EDGES:
        while target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != module and target in MODULES and not MODULES[module].name == "__init__.py":
            graph[module].add(target)
    # a package's __init__ re-exports its modules: only edges *out* of __init__ files to other
    # packages count, which the layer test covers; cycles among plain modules are found here
    seen, on_stack, cycles = set(), [], []

    def visit(node: str) -> None:
        seen.add(node)
        on_stack.append(node)
        for nxt in graph[node]:
            if nxt in on_stack:
                cycles.append(on_stack[on_stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        on_stack.pop()

    for node in graph:
        if node not in seen:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_crosses_packages():
    wrong = []
    for module, target, names, line in EDGES:
        same_package = module.rsplit(".", 1)[0] == target.rsplit(".", 1)[0] or target.startswith(module + ".")
        private = [n for n in names if n.startswith("_")]
        private_module = any(p.startswith("_") and p != "_version" for p in target.split("."))
        if (private or private_module) and not same_package and _unit(module) != _unit(target):
            wrong.append(f"{module}:{line} imports {private or target} from {target}")
    assert not wrong, "private names imported across packages:\n" + "\n".join(wrong)


#: libraries that take long to import (or are optional extras): imported where they are used.
#: scipy: `import scipy.signal` alone takes 0.75 s here (pyloudnorm imports it); cryptography
#: and c2pa only sign; fcntl is POSIX-only
HEAVY = {"torch", "diffusers", "transformers", "peft", "accelerate", "ray", "nudenet", "c2pa", "cv2",
         "matplotlib", "colour", "moviepy", "av", "fsspec", "safetensors", "onnxruntime", "torchao", "tqdm",
         "scipy", "pyloudnorm", "cryptography", "fcntl", "tokenizers", "ipywidgets", "IPython", "uvicorn"}
#: modules that define torch modules at import time: imported lazily by the rest, like torch
#: and the review app (the `app` extra: SQLAlchemy, FastAPI, uvicorn), imported by `serve` and `worker` only
HEAVY_MODULES = {"brandstudio.post.sr", "brandstudio.post.grade_torch", "brandstudio.post.rife", "brandstudio.app"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_are_heavy_ones(module):
    """Imports sit at the top of a file; inside a function only the heavy optional libraries (so
    ``brandstudio profile validate`` starts fast) and the modules that import torch themselves."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    lazy = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if not node.level else [_resolve(module, node)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in HEAVY or name in HEAVY_MODULES or any(name.startswith(h + ".") for h in HEAVY_MODULES):
                    continue
                lazy.append(f"line {node.lineno}: {name}")
    assert not lazy, f"{module} imports inside functions what belongs at the top:\n" + "\n".join(lazy)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    target = ".".join(base + ([node.module] if node.module else []))
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return subs[0] if subs else target
