"""Benchmark: the nightly database jobs of the tis pack on a synthetic dataset.

    python -m bench.nightly_chain [--persons 300000] [--backends sqlite,mariadb]

For each backend: a fresh database with the demo dataset; then, in a child process of its own
(so its peak RSS is the chain's alone), the seven jobs twice: night 1 finds the derived tables
empty (as the old service left them every night), night 2 is the steady state with nothing
to change. Record status runs in ANY mode. Then, in another child, a row-by-row baseline of the
employing-body person-trust job as the old service did it (keyset pages of 5,000 pairs, one
entity select and one INSERT per row, a commit per page), and the ratio against our job's night
1, which writes the same table from empty. The old page query re-sorts the whole pair set for
every page, which takes hours on a server at 300,000 persons; there (--sampled, by default
MariaDB and PostgreSQL) a few pages at four points of the key range are timed and the full run
estimated. The share of the page query is printed too, with the ratio for the row work alone.

MariaDB and PostgreSQL databases are created under the server URLs given (by default the local
servers of the test suite) and dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench._context import BenchContext
from syncd.job import JobBody
from syncd.values import Value
from syncd_tis import TisSettings
from syncd_tis import _jobs as jobs
from syncd_tis._db import make_engine
from syncd_tis._demo import generate
from syncd_tis._schema import (
    contact_details,
    create_schema,
    gdc_details,
    gmc_details,
    person,
    person_trust,
    placement,
    post,
)

SERVERS = {
    "mariadb": os.environ.get(
        "SYNCD_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
    "postgres": os.environ.get(
        "SYNCD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
}
CHAIN: tuple[tuple[str, JobBody, dict[str, Value]], ...] = (
    ("PersonOwnerRebuildJob", jobs.person_owner_rebuild, {}),
    ("PersonPlacementEmployingBodyTrustJob", jobs.person_trust_employing_body, {}),
    ("PersonPlacementTrainingBodyTrustJob", jobs.person_trust_training_body, {}),
    ("PostEmployingBodyTrustJob", jobs.post_trust_employing_body, {}),
    ("PostTrainingBodyTrustJob", jobs.post_trust_training_body, {}),
    ("PersonRecordStatusJob", jobs.person_record_status, {"dateOverride": "ANY"}),
    ("PostFundingStatusSyncJob", jobs.post_funding_status, {}),
)
EMPLOYING_JOB = "PersonPlacementEmployingBodyTrustJob"
OLD_PAGE_SIZE = 5000
TARGET_TOTAL_S = 60.0
TARGET_RATIO = 20.0
TARGET_RSS_MB = 300.0


@dataclass
class JobTiming:
    seconds: float
    rows_read: int
    rows_written: int


@dataclass
class ChainResult:
    nights: list[dict[str, JobTiming]] = field(default_factory=list)
    peak_rss_mb: float = 0.0


@dataclass
class BaselineResult:
    seconds: float
    rows: int
    peak_rss_mb: float
    pages_run: int
    pages_total: int
    query_share: float  # of the page time, the part spent in the old keyset query

    @property
    def estimated(self) -> bool:
        return self.pages_run < self.pages_total


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_chain(url: str, nights: int) -> ChainResult:
    """The seven jobs `nights` times; runs in a child process."""
    settings = TisSettings(source_url=url)
    result = ChainResult()
    for _ in range(nights):
        night: dict[str, JobTiming] = {}
        for bean, body, args in CHAIN:
            ctx = BenchContext(bean, settings, args)
            started = time.perf_counter()
            body(ctx)
            night[bean] = JobTiming(time.perf_counter() - started, ctx.rows_read, ctx.rows_written)
        result.nights.append(night)
    result.peak_rss_mb = _peak_rss_mb()
    return result


def run_baseline(url: str, sample_pages: int) -> BaselineResult:
    """The old employing-body job, row by row (TIS-SYNC 3.2); runs in a child process.

    With `sample_pages` > 0 only that many pages run from each of four points spread over the
    person ids, and the full run's time is estimated from their mean page time. (Each page
    re-runs the old DISTINCT … ORDER BY query, whose cost falls as the keyset advances, so
    timing only the first pages would flatter the new job.)
    """
    engine = make_engine(url, TisSettings(source_url=url))
    body = post.c.employingBodyId
    distinct_pairs = (
        sa.select(person.c.id, body)
        .select_from(person.join(placement, placement.c.traineeId == person.c.id))
        .join(post, post.c.id == placement.c.postId)
        .where(body.is_not(None))
        .distinct()
    )
    pairs = distinct_pairs.order_by(person.c.id, body).limit(OLD_PAGE_SIZE)
    # The entity load: Person with its eager one-to-one children.
    entity = (
        sa.select(person, contact_details, gmc_details, gdc_details)
        .select_from(
            person.outerjoin(contact_details, contact_details.c.id == person.c.id)
            .outerjoin(gmc_details, gmc_details.c.id == person.c.id)
            .outerjoin(gdc_details, gdc_details.c.id == person.c.id)
        )
        .where(person.c.id == sa.bindparam("pid"))
    )
    insert = person_trust.insert()

    query_seconds: list[float] = []

    def page(last: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        with engine.begin() as conn:  # one transaction per page
            began = time.perf_counter()
            rows = conn.execute(pairs.where(sa.tuple_(person.c.id, body) > sa.tuple_(*last))).all()
            query_seconds.append(time.perf_counter() - began)
            for person_id, trust_id in rows:
                conn.execute(entity, {"pid": person_id}).first()
                conn.execute(insert, {"personId": person_id, "trustId": trust_id})
        return len(rows), ((rows[-1][0], rows[-1][1]) if rows else last)

    with engine.connect() as conn:
        total_rows = conn.execute(
            sa.select(sa.func.count()).select_from(distinct_pairs.subquery())
        ).scalar_one()
        persons = conn.execute(sa.select(sa.func.count()).select_from(person)).scalar_one()
        at = sa.select(person.c.id).order_by(person.c.id).limit(1)
        starts = [(conn.execute(at.offset(persons * q // 4)).scalar_one() - 1, 0) for q in range(4)]
    pages_total = -(-total_rows // OLD_PAGE_SIZE)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(person_trust.delete())  # deleteData(): delete all, its own transaction
    cleared = time.perf_counter() - started
    page_times: list[float] = []
    for number, first in enumerate([(0, 0)] if sample_pages == 0 else starts):
        if number:  # sampled segments may overlap; start each on an empty table, untimed
            with engine.begin() as conn:
                conn.execute(person_trust.delete())
        last = first
        for _ in range(sample_pages or pages_total + 1):
            began = time.perf_counter()
            count, last = page(last)
            if not count:
                break
            page_times.append(time.perf_counter() - began)
    engine.dispose()
    pages = len(page_times)
    seconds = cleared + (sum(page_times) / pages * pages_total if sample_pages else sum(page_times))
    share = sum(query_seconds[:pages]) / sum(page_times)
    return BaselineResult(seconds, total_rows, _peak_rss_mb(), pages, pages_total, share)


def _in_child(work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)` in a fresh spawned process, so its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(work, *args).result()


@contextmanager
def fresh_database(backend: str, keep: bool) -> Iterator[str]:
    """A new, empty database on `backend`; yields its URL and drops it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as folder:
            path = Path(folder) / "tis.sqlite3"
            yield f"sqlite:///{path}"
            if keep:
                kept = Path(tempfile.gettempdir()) / f"syncd-bench-{secrets.token_hex(3)}.sqlite3"
                path.replace(kept)
                print(f"  kept {kept}")
        return
    if backend not in SERVERS:
        raise SystemExit(f"unknown backend {backend!r} (sqlite, mariadb, postgres)")
    name = f"syncd_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
    quote = "`" if backend == "mariadb" else '"'
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield sa.make_url(SERVERS[backend]).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"  kept database {name}")
        else:
            force = " WITH (FORCE)" if backend == "postgres" else ""
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}"))
        admin.dispose()


def bench_backend(backend: str, args: argparse.Namespace) -> bool:
    """Run everything on one backend and print the figures; True when every target is met."""
    print(f"\n== {backend}: {args.persons:,} persons, seed {args.seed}")
    with fresh_database(backend, args.keep) as url:
        engine = make_engine(url, TisSettings(source_url=url))
        started = time.perf_counter()
        create_schema(engine)
        summary = generate(engine, persons=args.persons, seed=args.seed)
        engine.dispose()
        rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items() if v >= 1000)
        print(f"  dataset in {time.perf_counter() - started:.1f} s: {rows}", flush=True)
        chain: ChainResult = _in_child(run_chain, url, 2)
        ok = _report_chain(backend, chain)
        if not args.skip_baseline:
            sample = args.baseline_sample if backend in args.sampled_backends else 0
            baseline: BaselineResult = _in_child(run_baseline, url, sample)
            ok = _report_baseline(chain, baseline) and ok
    return ok


def _report_chain(backend: str, chain: ChainResult) -> bool:
    width = max(len(bean) for bean, _, _ in CHAIN)
    print(f"  {'job':<{width}}  {'night 1':>9}  {'night 2':>9}  {'rows read':>10}  {'written':>9}")
    first, second = chain.nights
    for bean, _, _ in CHAIN:
        a, b = first[bean], second[bean]
        print(
            f"  {bean:<{width}}  {a.seconds:8.2f}s  {b.seconds:8.2f}s"
            f"  {a.rows_read:>10,}  {a.rows_written:>9,}"
        )
    totals = [sum(t.seconds for t in night.values()) for night in chain.nights]
    print(f"  {'total':<{width}}  {totals[0]:8.2f}s  {totals[1]:8.2f}s")
    print(f"  peak RSS of the process running the jobs: {chain.peak_rss_mb:.0f} MB", flush=True)
    return (max(totals) <= TARGET_TOTAL_S or backend != "mariadb") and (
        chain.peak_rss_mb <= TARGET_RSS_MB
    )


def _report_baseline(chain: ChainResult, baseline: BaselineResult) -> bool:
    ours = chain.nights[0][EMPLOYING_JOB].seconds
    ratio = baseline.seconds / ours
    how = (
        f"estimated from {baseline.pages_run} sampled pages of {baseline.pages_total}"
        if baseline.estimated
        else f"{baseline.pages_run} pages"
    )
    row_work = baseline.seconds * (1 - baseline.query_share)
    print(
        f"  row-by-row baseline of {EMPLOYING_JOB}: {baseline.seconds:.1f} s for"
        f" {baseline.rows:,} rows ({how}; peak RSS {baseline.peak_rss_mb:.0f} MB);"
        f" ours {ours:.2f} s on night 1: {ratio:.1f}x faster\n"
        f"    of which the old page query {baseline.query_share:.0%}; the row-by-row work"
        f" alone ({row_work:.1f} s) is {row_work / ours:.1f}x ours",
        flush=True,
    )
    return ratio >= TARGET_RATIO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nightly_chain", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--persons", type=int, default=300_000, help="dataset size (default 300,000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--backends", default="sqlite,mariadb", help="comma-separated: sqlite, mariadb, postgres"
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="leave out the row-by-row baseline"
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=10,
        metavar="PAGES",
        help="on the --sampled backends, time this many baseline pages at each of four points"
        " and estimate the full run (default 10; 0 runs it in full)",
    )
    parser.add_argument(
        "--sampled",
        dest="sampled",
        default="mariadb,postgres",
        help="backends whose baseline is sampled (default mariadb,postgres: a full row-by-row"
        " run there re-sorts the whole pair set per page and takes hours, like the old job)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases for inspection")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.sampled_backends = {b.strip() for b in args.sampled.split(",") if b.strip()}
    print(
        f"targets: seven jobs <= {TARGET_TOTAL_S:.0f} s on MariaDB, >= {TARGET_RATIO:.0f}x the"
        f" row-by-row baseline, peak RSS <= {TARGET_RSS_MB:.0f} MB"
    )
    results = {backend: bench_backend(backend, args) for backend in backends}
    print(
        "\n"
        + "  ".join(f"{b}: {'targets met' if ok else 'TARGET MISSED'}" for b, ok in results.items())
    )
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
