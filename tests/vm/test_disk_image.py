"""The disk image for real PCs (`image-build/build OUT`) boots by GRUB from legacy BIOS and UEFI.

The same QEMU (TCG) as the end-to-end test, with the whole disk as the only drive: SeaBIOS reads
GRUB's boot.img from the MBR, OVMF loads EFI/BOOT/BOOTX64.EFI from the ESP. Both must reach
multi-user with the data partition mounted and the kiosk's units started. The disk is written
to a larger one (a qcow2 overlay 1 GiB bigger): at first boot the data partition and its ext4
grow to fill it. The image is built with --test-units, the production units plus the journal
tap through which the test reads the guest (tests/image/test_variants.py checks that this is
the only difference).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.vm import VM, colour_share
from tests.vm.conftest import REPO

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(1200)]

GROWN_BY = 1024 * 1024 * 1024
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def grown_disk(image: Path, directory: Path) -> Path:
    """A qcow2 overlay of *image*, GROWN_BY bytes larger: the image written to a bigger disk."""
    overlay = directory / "bigger-disk.qcow2"
    size = image.stat().st_size + GROWN_BY
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(image),
            str(overlay),
            str(size),
        ],
        check=True,
    )
    return overlay


def resized_bytes(message: str) -> float:
    """The size in systemd-growfs's 'Successfully resized "/var/lib/kiosk" to 1.2G bytes.'"""
    found = re.search(r'resized "/var/lib/kiosk" to ([0-9.]+)([KMGT]?)', message)
    assert found, message
    return float(found.group(1)) * UNITS.get(found.group(2), 1)


@pytest.fixture(scope="module")
def disk_image(artifacts: Path) -> Path:
    """`image-build/build OUT`: the GPT disk with GRUB for both firmwares."""
    out = REPO / "image-build" / "out" / "disk"
    with (artifacts / "disk-build.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, str(REPO / "image-build" / "build.py"), "--test-units", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    assert done.returncode == 0, (artifacts / "disk-build.log").read_text()[-3000:]
    return out / "kiosk.img"


@pytest.mark.parametrize("firmware", ["bios", "uefi-secureboot"])
def test_disk_image_boots(disk_image: Path, firmware: str, artifacts: Path, tmp_path: Path) -> None:
    """GRUB boots the kiosk from the disk image; the system comes up read-only with its data,
    and the data partition has grown to the end of the (bigger) disk."""
    vm = VM(
        image=None,
        workdir=tmp_path,
        data_image=None,
        server_port=1,
        disk=grown_disk(disk_image, tmp_path),
        disk_format="qcow2",
        firmware=firmware,
        machine="q35,smm=on" if firmware == "uefi-secureboot" else "pc",
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
        grown = vm.wait_for(
            "the data filesystem grown (systemd-growfs)",
            lambda: vm.find_journal('resized "/var/lib/kiosk"'),
            60,
        )
        (artifacts / f"disk-{firmware}-growfs.txt").write_text(grown + "\n")
        # 256 MiB at build time; the disk grew by 1 GiB after it: the filesystem follows
        # (systemd prints the size rounded down to one decimal: 1.2G for 1.25 GiB).
        assert resized_bytes(grown) >= GROWN_BY, grown
        if firmware == "uefi-secureboot":
            # Only shim, the signed GRUB and the signed kernel can have booted under it.
            assert vm.find_journal("Secure boot enabled"), "the kernel did not see Secure Boot"
        # Debian's OVMF has no CSM: under it, only the ESP's BOOTX64.EFI can have booted.
        # The screen comes up on its own. This image was built without a configuration: the
        # station must stay up and the screen say "HORS SERVICE" (the console's bright yellow
        # big word, about 3 % of the screen), not wait on a black screen or "Démarrage" forever.
        vm.wait_for(
            "the out-of-service screen",
            lambda: colour_share(vm.screen_pixels(), (255, 255, 85), tol=40) > 0.01,
            180,
        )
        assert vm.find_journal("station out of service: configuration error")
        time.sleep(2)
        vm.screendump(artifacts / f"disk-{firmware}.png")
    finally:
        vm.stop()
