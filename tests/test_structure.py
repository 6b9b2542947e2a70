"""The architecture as the imports draw it: no import cycle among ``mjx_reach``, ``deploy`` and the
command-line scripts; ``deploy`` imports of ``mjx_reach`` only the numpy-only camera model and the
contract at module level (the rest of the library needs JAX and MuJoCo); the library never imports
``deploy``. Read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("mjx_reach", "deploy")
SCRIPTS = ("train.py", "export.py")
DEPLOY_MAY_IMPORT = {"mjx_reach.camera", "mjx_reach.contract"}
"""The library modules deploy may import at module level: numpy only."""


def module_files() -> dict[str, pathlib.Path]:
    """Dotted module name → source file, for the packages and the scripts."""
    files = {path.stem: REPO / path for path in map(pathlib.Path, SCRIPTS)}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports(path: pathlib.Path, known: set[str], module_level_only: bool = False) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod`` when that
    is a module); with ``module_level_only``, imports inside functions (lazy ones) are left out."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                for alias in node.names
            }
    return {name for name in found if name in known}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_even_through_lazy_imports():
    files = module_files()
    graph = {name: imports(path, set(files)) - {name} for name, path in files.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_deploy_imports_only_the_numpy_only_library_modules():
    files = module_files()
    for name, path in files.items():
        if name.split(".")[0] == "deploy":
            library = {m for m in imports(path, set(files), module_level_only=True) if m.split(".")[0] == "mjx_reach"}
            assert library <= DEPLOY_MAY_IMPORT, f"{name} imports {sorted(library - DEPLOY_MAY_IMPORT)} at module level"


def test_library_never_imports_deploy():
    files = module_files()
    for name, path in files.items():
        if name.split(".")[0] == "mjx_reach":
            assert not {m for m in imports(path, set(files)) if m.split(".")[0] == "deploy"}, f"{name} imports deploy"


def test_numpy_only_modules_import_no_jax_mujoco_or_other_library_modules():
    files = module_files()
    for name in DEPLOY_MAY_IMPORT:
        tree = ast.parse(files[name].read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not roots & {"jax", "mujoco", "flax", "warp"}, (
            f"{name} imports {sorted(roots & {'jax', 'mujoco', 'flax', 'warp'})}"
        )
        assert imports(files[name], set(files)) <= DEPLOY_MAY_IMPORT, f"{name} imports other library modules"


def public_functions(tree: ast.Module):
    """(qualified name, node) of the public functions and methods of a module: module-level
    functions and methods of module-level classes whose names do not start with ``_``."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def test_public_functions_have_type_hints():
    missing = []
    for name, path in module_files().items():
        for qualname, fn in public_functions(ast.parse(path.read_text())):
            args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg, fn.args.kwarg]
            unannotated = [
                a.arg for a in args if a is not None and a.annotation is None and a.arg not in ("self", "cls")
            ]
            if unannotated or fn.returns is None:
                missing.append(f"{name}.{qualname}({', '.join(unannotated)}){'' if fn.returns else ' -> ?'}")
    assert not missing, f"{len(missing)} public functions without full type hints: " + "; ".join(missing)
