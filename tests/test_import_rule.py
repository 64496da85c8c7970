"""The import rule of tsallis_ref/__init__.py's docstring: every module imports only from lower layers."""

import ast
import pathlib
import re
import subprocess
import sys

import tsallis_ref

PKG = pathlib.Path(tsallis_ref.__file__).resolve().parent
ROOT = PKG.parent


def _layers() -> dict[str, int]:
    layers = {}
    for n, names in re.findall(r"^\s*layer (\d+): (.+)$", tsallis_ref.__doc__, flags=re.M):
        for name in names.split(","):
            layers[name.strip()] = int(n)
    return layers


def _unit(module: str) -> str:
    """``tsallis_ref.data.verify`` -> ``data``; ``tsallis_ref.trainer`` -> ``trainer``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _imports(path: pathlib.Path, root: pathlib.Path = ROOT) -> set[str]:
    mod = ".".join(path.relative_to(root).with_suffix("").parts)
    pkg = mod.rsplit(".", 1)[0] if path.name != "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "tsallis_ref":  # `from tsallis_ref import X`: X is a module, or an attribute of the root
                names = [
                    target + "." + a.name
                    for a in node.names
                    if (PKG / a.name).is_dir() or (PKG / f"{a.name}.py").is_file()
                ]
            else:
                names = [target]
            out |= {t for t in names if t.startswith("tsallis_ref.")}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tsallis_ref.")}
    return out


def test_every_module_is_in_the_table_and_imports_only_lower_layers():
    layers = _layers()
    assert len(layers) >= 15
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the package's front door re-exports from every layer
        unit = rel.parts[0].removesuffix(".py")
        assert unit in layers, f"{rel} is not in the layer table of tsallis_ref/__init__.py"
        for target in _imports(path):
            tu = _unit(target)
            if tu == unit:
                continue
            assert tu in layers, f"{rel} imports {target}, which is not in the layer table"
            if layers[tu] >= layers[unit]:
                bad.append(f"{rel} (layer {layers[unit]}) imports {target} (layer {layers[tu]})")
    assert not bad, "imports against the layer rule:\n" + "\n".join(bad)


def test_the_checker_sees_a_relative_upward_import(tmp_path):
    fake = tmp_path / "tsallis_ref" / "data" / "verify.py"
    fake.parent.mkdir(parents=True)
    fake.write_text((PKG / "data" / "verify.py").read_text() + "\nfrom ..rollout import generate\n")
    found = _imports(fake, tmp_path)
    assert "tsallis_ref.rollout" in found and _layers()[_unit("tsallis_ref.rollout")] > _layers()["data"]


def test_data_loads_nothing_of_the_trainer_stack_in_a_fresh_interpreter():
    code = (
        "import sys, tsallis_ref.data; "
        "print(sorted(m for m in sys.modules if m.split('.')[-1] in "
        "('rollout', 'trainer', 'models', 'scoring', 'evaluation', 'precision', 'batches') "
        "and m.startswith('tsallis_ref')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]", out.stdout
