"""The project's wiring: dvc.yaml lists every module a stage runs, and libraries never import stages."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# Modules run as commands: every one ends in run_cli(main); none may be imported by the package.
COMMANDS = {"fetch", "extract", "split", "train", "evaluate", "cv", "card", "figures", "predict", "corpus_manifest", "fetch_corpus"}


def imports_of(module: str) -> set[str]:
    """pipeline modules that `module` imports directly (`from pipeline import x` or `from pipeline.x import ...`)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pipeline.")}
    return found


def closure(module: str) -> set[str]:
    """`module` and every pipeline module it imports, directly or not."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports_of(current))
    return seen


def test_every_command_is_a_module_with_a_cli() -> None:
    for name in COMMANDS:
        assert "run_cli(main)" in (PACKAGE / f"{name}.py").read_text(), name


@pytest.mark.parametrize("stage", sorted(DVC_STAGES))
def test_dvc_deps_list_exactly_the_modules_the_stage_imports(stage: str) -> None:
    spec = DVC_STAGES[stage]
    module = spec["cmd"].removeprefix("python -m pipeline.").split()[0]
    listed = {d for d in spec.get("deps", []) if str(d).startswith("pipeline/")}
    needed = {f"pipeline/{m}.py" for m in closure(module)}
    assert listed == needed, f"{stage}: missing {sorted(needed - listed)}, extra {sorted(listed - needed)}"


def test_libraries_never_import_commands() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem not in COMMANDS:
            assert not imports_of(path.stem) & COMMANDS, f"{path.stem} imports {imports_of(path.stem) & COMMANDS}"


def test_closure_sees_indirect_imports() -> None:
    """The check above would pass vacuously if the import walk missed `from pipeline import x`."""
    assert {"metrics", "training", "dataset", "manifest", "errors"} <= closure("train")
