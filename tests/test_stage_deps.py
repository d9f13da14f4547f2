"""The project files a stage script imports are DVC dependencies of that stage: its helper scripts
(`stages/common.py`, `stages/params_io.py`) and every `iics` module the script or those helpers
import. Otherwise `dvc repro` would reuse outputs that the changed code would no longer produce.
(Imports inside `iics` itself, e.g. pseudo_labels -> cluster, are listed in dvc.yaml by hand.)"""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def project_file(module: str, importer: Path) -> Path | None:
    """The repository file behind an imported module name, or None for third-party modules."""
    parts = module.split(".")
    if parts[0] == "iics":
        base = REPO.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None
    sibling = importer.parent / f"{parts[0]}.py"  # stage scripts import their helpers by bare name
    return sibling if importer.parent == REPO / "stages" and sibling.is_file() else None


def imported_files(path: Path) -> set[Path]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside a package
                package = path.parent
                for _ in range(node.level - 1):
                    package = package.parent
                module = ".".join(package.relative_to(REPO).parts + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for name in names:
            target = project_file(name, path)
            if target is not None:
                found.add(target)
    return found


def stage_imports(script: Path) -> set[Path]:
    """The helper scripts the stage script imports, and the iics modules it and they import."""
    direct = imported_files(script)
    helpers = {path for path in direct if path.parent == REPO / "stages"}
    found = set(direct)
    for helper in helpers:
        found |= {path for path in imported_files(helper) if path.parent != REPO / "stages"}
    return {path for path in found if path.name != "__init__.py" or path.parent != REPO / "iics"}


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_every_imported_project_file_is_a_stage_dependency():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = REPO / body["cmd"].split()[1]
        deps = [str(dep) for dep in body.get("deps", [])]
        assert covered(script, deps), f"{name}: its own script {script.name} is not a dependency"
        lacking = sorted(p.relative_to(REPO).as_posix() for p in stage_imports(script) if not covered(p, deps))
        if lacking:
            missing[name] = lacking
    assert not missing, f"stages import project files that are not in their deps: {missing}"
