"""The workspace shape: ten packages, each installable on its own, depending on paperlab and no sibling."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "profuser",
    "adore",
    "aihf",
    "irl_sft",
    "roleinteract",
    "semmim",
    "sbr_side_info",
    "unify",
    "alpha_umi",
    "paperowl",
]


def _pyproject(name: str) -> dict:
    return tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())


def test_workspace_lists_exactly_the_ten_packages():
    found = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
    assert found == sorted(PACKAGES)
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["tool"]["uv"]["workspace"]["members"] == ["shared", "packages/*"]
    assert (ROOT / "uv.lock").is_file()


@pytest.mark.parametrize("name", PACKAGES)
def test_package_metadata_and_src_layout(name):
    meta = _pyproject(name)["project"]
    assert meta["name"] == f"paperlab-{name.replace('_', '-')}"
    deps = [re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower() for d in meta["dependencies"]]
    assert "paperlab" in deps, f"{name} must depend on paperlab"
    siblings = {f"paperlab-{p.replace('_', '-')}" for p in PACKAGES}
    assert not siblings & set(deps), f"{name} depends on a sibling package"
    src = ROOT / "packages" / name / "src" / name
    assert (src / "__init__.py").is_file() and (src / "cli.py").is_file()
    assert (src / "conf" / "__init__.py").is_file()
    assert (ROOT / "packages" / name / "README.md").is_file()
    assert meta["scripts"][f"{name}-run"] == f"{name}.cli:main"


@pytest.mark.parametrize("name", PACKAGES)
def test_no_source_file_imports_a_sibling(name):
    siblings = set(PACKAGES) - {name}
    offenders = []
    for path in (ROOT / "packages" / name).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {r}" for r in roots if r in siblings
            ]
    assert not offenders, offenders


def test_importing_each_package_loads_no_sibling():
    code = (
        "import importlib, sys, json\n"
        f"names = {PACKAGES!r}\n"
        "out = {}\n"
        "for n in names:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(n)\n"
        "    out[n] = sorted({m.split('.')[0] for m in set(sys.modules) - before} & (set(names) - {n}))\n"
        "print(json.dumps(out))\n"
    )
    # one fresh interpreter per package would be cleaner but slow; import order is checked both ways instead
    for order in (PACKAGES, PACKAGES[::-1]):
        result = subprocess.run(
            [sys.executable, "-c", code.replace(repr(PACKAGES), repr(order))],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        loaded = __import__("json").loads(result.stdout.strip().splitlines()[-1])
        assert all(not v for v in loaded.values()), loaded


def test_nothing_tracked_is_over_2_mib():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    big = [
        f
        for f in files.decode().split("\0")
        if f and (ROOT / f).is_file() and (ROOT / f).stat().st_size > 2 << 20
    ]
    assert not big, big


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None) if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING"):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _internal_imports(name: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports at run time (module level or inside functions)."""
    src = ROOT / "packages" / name / "src" / name
    graph: dict[str, set[str]] = {}
    for path in src.rglob("*.py"):
        module = ".".join(path.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith(name + ".")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == name:
                    deps |= {f"{name}.{a.name}" for a in node.names if (src / f"{a.name}.py").is_file()}
                elif node.module.startswith(name + "."):
                    deps.add(node.module)
        graph[module] = deps - {module}
    return graph


@pytest.mark.parametrize("name", PACKAGES)
def test_no_import_circle_inside_a_package(name):
    """Modules of a package import each other along a tree, never in a circle (the package's __init__ aside: it
    re-exports)."""
    graph = {m: {d for d in deps if d != name} for m, deps in _internal_imports(name).items() if m != name}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            assert state.get(dep) != 1, "import circle: " + " -> ".join([*path[path.index(dep) :], dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
