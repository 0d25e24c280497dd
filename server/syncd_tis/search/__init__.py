"""Search indices and revalidation publishers of the tis pack.

* `persons`, `posts`: the document builders (keyset pages over Person / Post ids, one document
  per row, id = the row's id); `mappings`: their Elasticsearch mappings.
* `sink`: the sink protocol (begin, write, commit, abort); `embedded`: SQLite FTS5 files in the
  state directory; `elastic`: Elasticsearch with a new index per run and an alias switch;
  `bulk`: byte-capped bulk bodies; `retry`: backoff for network calls.
* `reval`: the revalidation publishers (AMQP with publisher confirms).
* `settings`: `SearchSettings` (`[packs.tis.search]`) and `RevalSettings` (`[packs.tis.reval]`).
* `jobs`: the job specs and bodies; `jobs.search_and_reval_jobs(ctx, settings)` is what the
  pack calls. Importing `jobs` imports `syncd_tis._search_schema`, which adds the tables the
  indices read to the TCS MetaData.

This package module imports only the settings, which import nothing of the tis pack, so
`syncd_tis._settings` can import them without an import cycle.
"""

from __future__ import annotations

from syncd_tis.search.settings import RevalSettings as RevalSettings
from syncd_tis.search.settings import SearchSettings as SearchSettings

__all__ = ["RevalSettings", "SearchSettings"]
