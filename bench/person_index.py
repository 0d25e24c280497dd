"""Benchmark: building the persons index into the embedded sink (SQLite FTS5).

    python -m bench.person_index [--persons 300000] [--seed 1] [--page-size 2000]

Builds the demo dataset in a fresh SQLite database (the tis demo generator plus the search demo
rows), fills PersonOwner and PersonTrust with the pack's own jobs (so documents carry owners
and trusts, as on a real night), then runs the PersonElasticSearchJob body in a child process
of its own, so its peak RSS is the build's alone, and prints documents/s, wall time and the
child's peak RSS. Targets for 300,000 persons: <= 60 s and <= 300 MB. (The old service took
7-11 minutes, and searchers saw an empty index meanwhile.)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from bench._context import BenchContext
from syncd.job import JobBody, PackContext
from syncd_tis import TisSettings
from syncd_tis import _jobs as tis_jobs
from syncd_tis._db import make_engine
from syncd_tis._demo import generate
from syncd_tis._schema import create_schema
from syncd_tis._search_demo import seed_search_demo
from syncd_tis.search import jobs as search_jobs
from syncd_tis.search.embedded import EmbeddedSearcher
from syncd_tis.search.settings import SearchSettings

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0


@dataclass
class BuildResult:
    documents: int
    seconds: float
    peak_rss_mb: float


def build_in_child(settings: search_jobs.IndexJobSettings) -> BuildResult:
    """The persons index build; runs in a spawned child, so ru_maxrss is the build's own."""
    ctx = BenchContext("PersonElasticSearchJob", settings)
    started = time.perf_counter()
    search_jobs.person_index(ctx)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return BuildResult(ctx.rows_written, seconds, peak)


def _prepare(url: str, persons: int, seed: int) -> None:
    settings = TisSettings(source_url=url)
    engine = make_engine(url, settings)
    try:
        started = time.perf_counter()
        create_schema(engine)
        summary = generate(engine, persons=persons, seed=seed)
        extra = seed_search_demo(engine, seed)
    finally:
        engine.dispose()
    rows = {**summary.rows, **extra}
    shown = ", ".join(f"{k} {v:,}" for k, v in rows.items() if v >= 1000)
    print(f"  dataset in {time.perf_counter() - started:.1f} s: {shown}")
    started = time.perf_counter()
    derived: list[tuple[str, JobBody]] = [
        ("PersonOwnerRebuildJob", tis_jobs.person_owner_rebuild),
        ("PersonPlacementEmployingBodyTrustJob", tis_jobs.person_trust_employing_body),
    ]
    for bean, body in derived:
        body(BenchContext(bean, settings))
    print(f"  PersonOwner and PersonTrust filled in {time.perf_counter() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.person_index", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--persons", type=int, default=300_000, help="dataset size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=SearchSettings().page_size)
    args = parser.parse_args(argv)
    print(
        f"targets: persons index of {args.persons:,} persons into the embedded sink"
        f" <= {TARGET_SECONDS:.0f} s, peak RSS <= {TARGET_RSS_MB:.0f} MB"
    )
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as folder:
        state_dir = Path(folder)
        url = f"sqlite:///{state_dir / 'tis.sqlite3'}"
        _prepare(url, args.persons, args.seed)
        spec = next(
            s
            for s in search_jobs.search_and_reval_jobs(
                PackContext(state_dir=state_dir, settings=None),
                TisSettings(source_url=url),
                search=SearchSettings(page_size=args.page_size),
                env={},
            )
            if s.name == "PersonElasticSearchJob"
        )
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result: BuildResult = pool.submit(build_in_child, spec.settings).result()
        searcher = EmbeddedSearcher(state_dir / search_jobs.INDEX_DIR, "persons")
        size_mb = searcher.path.stat().st_size / 1e6
        indexed = searcher.count()
        probe = time.perf_counter()
        hits = searcher.search("smith", 10)
        probe_ms = (time.perf_counter() - probe) * 1e3
    rate = result.documents / result.seconds if result.seconds else float("inf")
    print(
        f"  built {result.documents:,} documents in {result.seconds:.1f} s"
        f" ({rate:,.0f} documents/s); index file {size_mb:.0f} MB, {indexed:,} documents"
    )
    print(f"  peak RSS of the process building the index: {result.peak_rss_mb:.0f} MB")
    print(f"  search 'smith': {len(hits)} hits in {probe_ms:.1f} ms")
    ok = (
        result.seconds <= TARGET_SECONDS
        and result.peak_rss_mb <= TARGET_RSS_MB
        and indexed == args.persons
    )
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
