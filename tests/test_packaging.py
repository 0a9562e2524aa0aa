"""The package installs as the project card says: kernels/ under hwsim.kernels, every package listed."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    found = set()
    for pkg, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join((pkg, *rel.parts)) if rel.parts else pkg)
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_kernels_import_under_project_namespace():
    import hwsim.kernels
    assert pathlib.Path(hwsim.kernels.__file__).parent == ROOT / "kernels"
