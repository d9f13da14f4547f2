"""The project files a stage script imports are DVC dependencies of that stage: its helper scripts
(`stages/common.py`, `stages/params_io.py`) and every `iics` module it imports, directly or through
a helper or another `iics` module (pseudo_labels -> cluster -> reciprocal_linkage). Otherwise
`dvc repro` would reuse outputs that the changed code would no longer produce."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml
from tiny_repo import stage_command

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
    """Every project file the stage script imports, directly or through other project files."""
    found: set[Path] = set()
    pending = [script]
    while pending:
        for path in imported_files(pending.pop()):
            if path not in found:
                found.add(path)
                pending.append(path)
    return {path for path in found if path != REPO / "iics" / "__init__.py"}


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_code(stage: dict) -> tuple[Path, list[str], set[Path]]:
    """A stage's script, its code deps (under iics/ and stages/) and the project files it imports."""
    body = stage.get("do", stage)
    script = REPO / stage_command(body["cmd"])[0]
    code_deps = [str(dep) for dep in body.get("deps", []) if str(dep).startswith(("iics/", "stages/"))]
    return script, code_deps, stage_imports(script)


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_imported_project_file_is_a_stage_dependency():
    missing = {}
    for name, stage in dvc_stages().items():
        script, deps, imports = stage_code(stage)
        assert covered(script, deps), f"{name}: its own script {script.name} is not a dependency"
        lacking = sorted(p.relative_to(REPO).as_posix() for p in imports if not covered(p, deps))
        if lacking:
            missing[name] = lacking
    assert not missing, f"stages import project files that are not in their deps: {missing}"


def test_no_stage_depends_on_code_it_does_not_import():
    """An unused code dep would rerun the stage (for every round) when unrelated code changes."""
    unused = {}
    for name, stage in dvc_stages().items():
        script, deps, imports = stage_code(stage)
        extra = [dep for dep in deps if not any(covered(path, [dep]) for path in imports | {script})]
        if extra:
            unused[name] = extra
    assert not unused, f"stages depend on code they do not import: {unused}"
