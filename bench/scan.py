"""The scanning core against `clamdscan --multiscan --fdpass`, same tree, same clamd, same run.

Builds (once, cached under bench/out/) a 600 MB corpus of 3,000 mixed files and a synthetic large
signature set (1,000,000 .hdb and 50,000 .ndb random signatures, so the engine works like it does
with a real database), starts one clamd with `DisableCache yes` (clamd otherwise remembers clean
content by hash and every rescan is nearly free), then alternates `kiosk scan --json` and
`clamdscan --multiscan --fdpass` on the corpus and on 20,000 files of 100 bytes, each round in the
other order than the one before. Prints median wall times, the median of the rounds' ratios (the
two runs of a round share the machine's state of the moment) and their geometric mean with a ~95%
interval, MB/s, files/s, the kiosk's peak memory, the load average, and the CPU each run cost (the
client's own and clamd's for it). The kiosk runs with its bytecode compiled, as a station's does
(pip compiles the wheel it installs; an editable checkout under PYTHONDONTWRITEBYTECODE would
compile every module again on each run).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import kiosk
from tests.support.clamd import EICAR, TESTFILES, start_clamd
from tests.support.measure import scan_with_peak

OUT = Path(__file__).resolve().parent / "out"
MB = 1024 * 1024
CORPUS_BYTES = 600 * MB
# Bumped whenever build_corpus changes: a corpus cached under bench/out/ by older code is rebuilt.
CORPUS_VERSION = 2
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
WORDS = (
    "le la les un une des école élève classe cours leçon devoir cahier stylo livre page "
    "mathématiques français histoire géographie sciences musique sport récréation cantine "
    "professeur directeur parents réunion sortie photo voyage projet exposé résumé note"
).split()


def _sizes(rng: random.Random, files: int) -> list[int]:
    """File sizes, 1 KB to 8 MB: 90% small (1-100 KB), 10% large (100 KB-8 MB), log-uniform.

    The large ones are then scaled so the corpus weighs ~600 MB: drawn as they come, 300 large
    files vary by a fifth from one seed to the next, and the corpus with them.
    """
    sizes = []
    for _ in range(files):
        low, high = (1024, 100 * 1024) if rng.random() < 0.9 else (100 * 1024, 8 * MB)
        sizes.append(int(math.exp(rng.uniform(math.log(low), math.log(high)))))
    small = sum(s for s in sizes if s < 100 * 1024)
    large = sum(s for s in sizes if s >= 100 * 1024) or 1
    scale = (CORPUS_BYTES * files / 3000 - small) / large
    return [s if s < 100 * 1024 else max(100 * 1024, min(8 * MB, int(s * scale))) for s in sizes]


def _text(rng: random.Random, size: int) -> bytes:
    block = " ".join(rng.choices(WORDS, k=2000)).encode() + b"\n"
    return (block * (size // len(block) + 1))[:size]


def build_corpus(root: Path, files: int = 3000, seed: int = 1) -> None:
    """A mixed corpus: text, binary, zip, PDF-like, JPEG-like, test files and a few EICAR."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    testfiles = sorted(TESTFILES.iterdir())
    for i, size in enumerate(_sizes(rng, files)):
        folder = root / f"classe{i % 30:02d}" / f"theme{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 10
        if i % 500 == 0:
            (folder / f"piece{i}.txt").write_bytes(EICAR)
        elif i % 97 == 0:
            src = testfiles[i % len(testfiles)]
            shutil.copy(src, folder / src.name)
        elif kind in (0, 1, 2, 3):
            (folder / f"cours{i}.txt").write_bytes(_text(rng, size))
        elif kind in (4, 5):
            (folder / f"donnees{i}.bin").write_bytes(rng.randbytes(size))
        elif kind == 6:
            buf = io.BytesIO()
            # A class's photo album: a text and four photos, which deflate does not shrink.
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("liste.txt", _text(rng, max(1, size // 5)))
                for j in range(4):
                    z.writestr(f"photo{j}.jpg", JPEG_HEAD + rng.randbytes(max(1, size // 5)))
            (folder / f"archive{i}.zip").write_bytes(buf.getvalue())
        elif kind == 7:
            body = b"%PDF-1.4\n" + rng.randbytes(size) + b"\n%%EOF\n"
            (folder / f"document{i}.pdf").write_bytes(body)
        else:
            body = JPEG_HEAD + rng.randbytes(size)
            (folder / f"photo{i}.jpg").write_bytes(body)


def build_small(root: Path, files: int = 20_000) -> None:
    """20,000 files of 100 bytes in 20 folders."""
    for d in range(20):
        folder = root / f"dossier{d:02d}"
        folder.mkdir(parents=True)
        for i in range(files // 20):
            (folder / f"note{i:04d}.txt").write_bytes(f"{d}-{i}".encode().ljust(100, b"."))


def build_signatures(seed: int = 2) -> dict[str, list[str]]:
    """1,000,000 random .hdb (md5:size:name) and 50,000 random .ndb body signatures."""
    rng = random.Random(seed)
    hdb = [
        f"{rng.randbytes(16).hex()}:{rng.randint(100, 10_000_000)}:Bench.Hash-{i}"
        for i in range(1_000_000)
    ]
    ndb = [f"Bench.Body-{i}:0:*:{rng.randbytes(rng.randint(12, 24)).hex()}" for i in range(50_000)]
    return {"bench.hdb": hdb, "bench.ndb": ndb}


def _tree_stats(root: Path) -> tuple[int, int]:
    files = size = 0
    for _dir, _subdirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(_dir, name)).st_size
    return files, size


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (clamd's, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_kiosk(root: Path, sock: Path) -> tuple[float, int, dict[str, object]]:
    """Run `kiosk scan --json`; return wall seconds, peak RSS bytes and the report."""
    start = time.perf_counter()
    _code, report, peak = scan_with_peak(root, sock, OUT / "peak-kb")
    return time.perf_counter() - start, peak, report


def run_clamdscan(root: Path, conf: Path) -> tuple[float, int]:
    """Run `clamdscan --multiscan --fdpass`; return wall seconds and how many files it flagged."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            "clamdscan",
            f"--config-file={conf}",
            "--multiscan",
            "--fdpass",
            "--no-summary",
            "--infected",
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    return wall, sum(1 for line in out.stdout.splitlines() if line.endswith(" FOUND"))


def compare(
    label: str, root: Path, sock: Path, conf: Path, rounds: int, clamd_pid: int
) -> dict[str, float]:
    """Alternate both scanners on *root*; print and return medians."""
    files, size = _tree_stats(root)
    kiosk_walls, clam_walls, peaks = [], [], []
    # CPU seconds per run: the client's own, and clamd's while it served that client. On a
    # machine shared with other work the walls vary a lot; the CPU a scan costs much less.
    kiosk_cpu, clam_cpu, clamd_for_kiosk, clamd_for_clam = [], [], [], []
    report: dict[str, object] = {}
    flagged = 0
    load_before = os.getloadavg()[0]
    for i in range(rounds):
        # Rounds alternate which scanner goes first (ABBA...): on a machine whose speed drifts,
        # going always first or always second would favour one of them.
        for scanner in ("kiosk", "clamdscan") if i % 2 == 0 else ("clamdscan", "kiosk"):
            own, engine = children_cpu(), process_cpu(clamd_pid)
            if scanner == "kiosk":
                wall, peak, report = run_kiosk(root, sock)
                kiosk_walls.append(wall)
                peaks.append(peak)
                kiosk_cpu.append(children_cpu() - own)
                clamd_for_kiosk.append(process_cpu(clamd_pid) - engine)
            else:
                wall, flagged = run_clamdscan(root, conf)
                clam_walls.append(wall)
                clam_cpu.append(children_cpu() - own)
                clamd_for_clam.append(process_cpu(clamd_pid) - engine)
    k, c = statistics.median(kiosk_walls), statistics.median(clam_walls)
    kc, cc = statistics.median(kiosk_cpu), statistics.median(clam_cpu)
    dk, dc = statistics.median(clamd_for_kiosk), statistics.median(clamd_for_clam)
    print(f"-- {label}: {files} files, {size / MB:.0f} MB, {rounds} rounds (medians)")
    print(f"   load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"   {'':24}{'wall s':>9}{'MB/s':>9}{'files/s':>10}{'own CPU s':>11}{'clamd CPU s':>13}")
    print(
        f"   {'kiosk scan --json':24}{k:9.2f}{size / MB / k:9.1f}{files / k:10.0f}"
        f"{kc:11.2f}{dk:13.2f}"
    )
    print(
        f"   {'clamdscan multiscan':24}{c:9.2f}{size / MB / c:9.1f}{files / c:10.0f}"
        f"{cc:11.2f}{dc:13.2f}"
    )
    print(f"   walls: kiosk {_walls(kiosk_walls)}; clamdscan {_walls(clam_walls)}")
    # Each round's two runs share the machine's state of the moment: the median of their ratios
    # varies less than the ratio of the two medians, which may take them from different rounds.
    pairs = sorted(a / b for a, b in zip(kiosk_walls, clam_walls, strict=True))
    paired = statistics.median(pairs)
    print(
        f"   ratio kiosk/clamdscan: {paired:.3f} (median of the rounds' ratios, "
        f"{pairs[0]:.2f}-{pairs[-1]:.2f}; of the medians {k / c:.3f})"
    )
    if len(pairs) > 1:
        mean, low, high = _geometric_interval(pairs)
        print(
            f"   geometric mean of the rounds' ratios {mean:.3f}, "
            f"~95% interval {low:.3f}-{high:.3f}"
        )
    print(f"   kiosk peak RSS: {max(peaks) / MB:.0f} MB")
    print(f"   CPU ratio (client + clamd): {(kc + dk) / (cc + dc):.2f}")
    findings = len(report.get("findings", []))  # type: ignore[arg-type]
    print(f"   verdict {report.get('verdict')}: kiosk findings {findings}, clamdscan {flagged}")
    return {"kiosk": k, "clamdscan": c, "ratio": paired, "peak_mb": max(peaks) / MB}


def _geometric_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of *ratios* and its ~95% interval (mean of the logs +- 2 standard errors)."""
    # Ratios multiply: 0.5 and 2.0 cancel out in logs, not in an arithmetic mean. The interval
    # says whether a difference of a few percent is one at all, on walls that vary this much.
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    spread = 2 * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - spread), math.exp(mean + spread)


def _walls(walls: list[float]) -> str:
    return " ".join(f"{w:.2f}" for w in walls)


def main(argv: list[str]) -> int:
    """Build what is missing, start clamd, compare, print."""
    parser = argparse.ArgumentParser(prog="bench scan")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=3000)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = OUT / f"corpus-{args.files}-v{CORPUS_VERSION}"
    small = OUT / "small-20000"
    t = time.perf_counter()
    if not corpus.exists():
        build_corpus(corpus.with_suffix(".tmp"), args.files)
        corpus.with_suffix(".tmp").rename(corpus)
    if not small.exists():
        build_small(small.with_suffix(".tmp"))
        small.with_suffix(".tmp").rename(small)
    print(f"corpora ready in {time.perf_counter() - t:.0f} s")
    compileall.compile_dir(Path(kiosk.__file__).parent, quiet=1)
    t = time.perf_counter()
    clamd_dir = OUT / "clamd"
    shutil.rmtree(clamd_dir, ignore_errors=True)
    server = start_clamd(
        clamd_dir,
        {"DisableCache": "yes", "MaxThreads": "12", "MaxQueue": "200", "LogFile": "/dev/null"},
        signatures=build_signatures(),
    )
    sigs = hashlib.sha256((clamd_dir / "db" / "bench.hdb").read_bytes()).hexdigest()[:12]
    print(f"clamd with 1,050,002 signatures (set {sigs}) up in {time.perf_counter() - t:.0f} s")
    conf = clamd_dir / "clamdscan.conf"
    conf.write_text(f"LocalSocket {server.socket}\n")
    try:
        pid = server.process.pid
        compare("corpus", corpus, server.socket, conf, args.rounds, pid)
        compare("20,000 files of 100 bytes", small, server.socket, conf, args.rounds, pid)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
