"""The investigate stage: incident responders' read access to the store, always under a case.

- ``session``: the one door: an audited session (case checked, ``started`` and outcome entries)
- ``sandbox``, ``statement``: DuckDB without file access over the committed files, and the
  statement check (a SELECT, or EXPLAIN of one)
- ``scope``, ``investigations``, ``addresses``, ``detectors``: ready-made investigations
- ``report``: the self-contained HTML incident report; ``render``: tables, CSV, JSON, Parquet
- ``audit``: the append-only, hash-chained audit trail
"""
