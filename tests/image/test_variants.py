"""The production image holds none of the VM test's taps and controls; the test variant holds
them and is otherwise the same (image-build/build.py's install_files, run on empty trees)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
# What only the VM test may have: the journal and event taps, the control port, the USB-gadget
# composite maker, the udev rule that starts them.
TEST_ONLY = {
    "etc/systemd/system/kiosk-testlog.service",
    "etc/systemd/system/kiosk-testevents.service",
    "etc/systemd/system/kiosk-testcontrol.service",
    "etc/udev/rules.d/61-kiosk-test-ports.rules",
    "usr/local/lib/kiosk/event-tap",
    "usr/local/lib/kiosk/test-control",
}
# Words that betray a test hook in a file (QEMU's virtio ports, the gadget framework).
TEST_MARKS = (b"org.kiosk.", b"virtio-ports", b"usb_gadget", b"dummy_hcd", b"kiosk-test")


def load_build() -> ModuleType:
    """image-build/build.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "kiosk_image_build", REPO / "image-build/build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build = load_build()


def files(root: Path) -> dict[str, bytes]:
    """Every file under *root* (relative path -> content)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The files the build adds to the base, for production and for the test variant."""
    production = tmp_path_factory.mktemp("production")
    test = tmp_path_factory.mktemp("test")
    build.install_files(production, test_units=False)
    build.install_files(test, test_units=True)
    return files(production), files(test)


def test_production_tree_has_no_test_hook(trees: tuple[dict[str, bytes], dict[str, bytes]]) -> None:
    """Not one test-only file, and no file that mentions a test port or the gadget framework."""
    production, _ = trees
    for unit in build.KIOSK_UNITS:
        assert f"etc/systemd/system/{unit}" in production  # the tree is the real one
    assert not TEST_ONLY & set(production)
    for path, content in production.items():
        assert "kiosk-test" not in path, path
        marks = [m.decode() for m in TEST_MARKS if m in content]
        assert not marks, f"{path} mentions {marks}"


def test_test_variant_is_production_plus_the_test_hooks(
    trees: tuple[dict[str, bytes], dict[str, bytes]],
) -> None:
    """The test variant adds exactly the test-only files and changes none of production's."""
    production, test = trees
    assert set(test) - set(production) == TEST_ONLY
    assert all(test[path] == content for path, content in production.items())


def test_units_of_systemd_dir_are_production_ones() -> None:
    """systemd/ (installed in every image) holds no test unit; the server's unit stays out."""
    names = {p.name for p in (REPO / "systemd").iterdir()}
    assert not {n for n in names if n.startswith("kiosk-test")}
    assert set(build.KIOSK_UNITS) <= names
    assert set(build.SERVER_UNITS) <= names


def test_build_flags_choose_the_variant() -> None:
    """--test and --test-units put the hooks in; no flag leaves them out."""
    assert not build.wants_test_units(build.parse_args(["out"]))
    assert not build.wants_test_units(build.parse_args(["--config", "k.toml", "out"]))
    assert build.wants_test_units(build.parse_args(["--test", "out"]))
    assert build.wants_test_units(build.parse_args(["--test-units", "out"]))
