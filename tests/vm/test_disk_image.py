"""The disk image for real PCs (`image-build/build OUT`) boots by GRUB from legacy BIOS and UEFI.

The same QEMU (TCG) as the end-to-end test, with the whole disk as the only drive: SeaBIOS reads
GRUB's boot.img from the MBR, OVMF loads EFI/BOOT/BOOTX64.EFI from the ESP. Both must reach
multi-user with the data partition mounted and the kiosk's units started.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.vm import VM, colour_share
from tests.vm.conftest import REPO

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def disk_image(artifacts: Path) -> Path:
    """`image-build/build OUT`: the GPT disk with GRUB for both firmwares."""
    out = REPO / "image-build" / "out" / "disk"
    with (artifacts / "disk-build.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, str(REPO / "image-build" / "build.py"), str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    assert done.returncode == 0, (artifacts / "disk-build.log").read_text()[-3000:]
    return out / "kiosk.img"


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_disk_image_boots(disk_image: Path, firmware: str, artifacts: Path, tmp_path: Path) -> None:
    """GRUB boots the kiosk from the disk image; the system comes up read-only with its data."""
    vm = VM(
        image=None,
        workdir=tmp_path,
        data_image=None,
        server_port=1,
        disk=disk_image,
        firmware=firmware,
    )
    started = time.monotonic()
    vm.start()
    try:
        finished = vm.wait_for(
            "multi-user (Startup finished)", lambda: vm.find_journal("Startup finished"), 420
        )
        seconds = time.monotonic() - started
        (artifacts / f"disk-{firmware}-boot.txt").write_text(f"{seconds:.1f} s: {finished}\n")
        assert vm.find_journal("Started kiosk-station.service")
        assert vm.find_journal("Started kiosk-ui.service")
        # Debian's OVMF has no CSM: under it, only the ESP's BOOTX64.EFI can have booted.
        # The screen comes up on its own (no signatures on this data partition: the kiosk
        # must say it is out of service, but say something).
        vm.wait_for(
            "the UI's first frame",
            lambda: colour_share(vm.screen_pixels(), (0, 0, 0), tol=8) < 0.9,
            180,
        )
        time.sleep(2)
        vm.screendump(artifacts / f"disk-{firmware}.png")
    finally:
        vm.stop()
