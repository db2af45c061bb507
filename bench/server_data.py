"""Fill a server database fast with plausible reports (bulk SQL, no API) for the read benchmark."""

from __future__ import annotations

import json
import time

from sqlalchemy import text

from kiosk.models import utcnow
from kiosk.server.db import Database
from tests.server.support import make_report

STATIONS = 50
THREATS = 200
HASHES = 2000
STICKS = 20_000


def main(argv: list[str]) -> int:
    """Not a benchmark on its own: see server_read."""
    print("bench.server_data only fills databases; run `python -m bench server`")
    return 0


def _document() -> str:
    return json.dumps(make_report("st-0").to_dict())


def fill(db: Database, count: int, days: int = 365) -> float:
    """Insert *count* reports spread over *days* (2% infected), their findings; return seconds."""
    started = time.perf_counter()
    now = utcnow()
    with db.write() as session:
        session.execute(text("DELETE FROM findings"))
        session.execute(text("DELETE FROM reports"))
        session.execute(text("DELETE FROM stations"))
        for i in range(STATIONS):
            session.execute(
                text(
                    "INSERT INTO stations (id, name, school, location, created_at, problems) "
                    "VALUES (:id, :name, :school, '', :now, '')"
                ),
                {"id": f"st-{i}", "name": f"Station {i}", "school": f"École {i // 2}", "now": now},
            )
    params = {"count": count, "span": days * 86400.0, "doc": _document()}
    if db.is_sqlite:
        reports = """
        WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i < :hi)
        INSERT INTO reports (report_id, scan_code, station_id, verdict, reason, started_at,
            finished_at, received_at, day, files_total, bytes_total, findings_total,
            threats_total, first_threat, engine_version, signatures_version, software_version,
            device_vendor, device_model, device_serial, device_size, device_fs, document)
        SELECT printf('%08x-0000-4000-8000-%012x', i, i), printf('B%03X-%04X', i % 4096, i % 65536),
            'st-' || (i % 50), v, CASE v WHEN 'infected' THEN 'threats_found' END,
            strftime('%Y-%m-%d %H:%M:%f000', t, '-90 seconds'), strftime('%Y-%m-%d %H:%M:%f000', t),
            strftime('%Y-%m-%d %H:%M:%f000', t), date(t), 1000 + i % 3000, i * 4096,
            CASE v WHEN 'infected' THEN 1 ELSE 0 END, CASE v WHEN 'infected' THEN 1 ELSE 0 END,
            CASE v WHEN 'infected' THEN 'Win.Trojan.Bench-' || (i % 200) END,
            'ClamAV 1.0.7', 27792, '0.1.0', 'SanDisk', 'Cruzer Blade',
            printf('SER%06d', (i * 7919) % 20000), 32000000000, 'vfat', :doc
        FROM (SELECT i, datetime('now', printf('-%f seconds', (:count - i) * :span / :count)) AS t,
            CASE WHEN i % 50 = 0 THEN 'infected' WHEN i % 37 = 0 THEN 'incomplete'
                 WHEN i % 101 = 0 THEN 'error' ELSE 'clean' END AS v FROM n)
        """
    else:
        reports = """
        INSERT INTO reports (report_id, scan_code, station_id, verdict, reason, started_at,
            finished_at, received_at, day, files_total, bytes_total, findings_total,
            threats_total, first_threat, engine_version, signatures_version, software_version,
            device_vendor, device_model, device_serial, device_size, device_fs, document)
        SELECT md5(i::text)::uuid::text, 'B' || lpad(to_hex(i % 4096), 3, '0') || '-'
                || lpad(to_hex(i % 65536), 4, '0'),
            'st-' || (i % 50), v, CASE v WHEN 'infected' THEN 'threats_found' END,
            t - interval '90 seconds', t, t, t::date, 1000 + i % 3000, i::bigint * 4096,
            CASE v WHEN 'infected' THEN 1 ELSE 0 END, CASE v WHEN 'infected' THEN 1 ELSE 0 END,
            CASE v WHEN 'infected' THEN 'Win.Trojan.Bench-' || (i % 200) END,
            'ClamAV 1.0.7', 27792, '0.1.0', 'SanDisk', 'Cruzer Blade',
            'SER' || lpad(((i::bigint * 7919) % 20000)::text, 6, '0'), 32000000000, 'vfat', :doc
        FROM (SELECT i, (now() at time zone 'utc')
                    - make_interval(secs => (:count - i) * :span / :count) AS t,
            CASE WHEN i % 50 = 0 THEN 'infected' WHEN i % 37 = 0 THEN 'incomplete'
                 WHEN i % 101 = 0 THEN 'error' ELSE 'clean' END AS v
              FROM generate_series(:lo, :hi) AS i) AS g
        """
    hash_expr = "printf('%064x', pk % 2000)" if db.is_sqlite else "lpad(to_hex(pk % 2000), 64, '0')"
    findings = f"""
        INSERT INTO findings (report_pk, position, path, verdict, threat, sha256, size,
            station_id, device_serial, finished_at)
        SELECT pk, 0, 'JEUX/jeu_gratuit.exe', 'infected', first_threat, {hash_expr}, 2400000,
            station_id, device_serial, finished_at
        FROM reports WHERE verdict = 'infected'
    """
    # A million rows per transaction: one giant one would grow SQLite's WAL to the whole table.
    chunk = 1_000_000
    for lo in range(1, count + 1, chunk):
        with db.write() as session:
            if db.is_sqlite:
                session.execute(text("PRAGMA cache_size = -262144"))  # 256 MiB for the indexes
            session.execute(text(reports), {**params, "lo": lo, "hi": min(lo + chunk - 1, count)})
    with db.write() as session:
        session.execute(text(findings))
    # What autovacuum would have done by then: statistics, and PostgreSQL's visibility map
    # (without it, index-only scans still visit the heap).
    if db.is_sqlite:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started
