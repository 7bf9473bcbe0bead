"""The ingest stage: log files and pipes become privacy-safe ``pageviews`` rows and quarantine records.

In the order a line travels:

- ``run``: the library entry point (``run(config, sources) -> IngestReport``): the sources loop
- ``paths``, ``sources``: which files a source names; opening them (compressed or not)
- ``source_stream``, ``frames``, ``gzip_members``, ``xz_streams``: reading them (read errors, and
  a compressed file's members or streams as ``gzip -d`` and ``xz -d`` read them)
- ``streams``: which stream a file is and where to read on (rotation, renames, rewritten files)
- ``blocks``: reading a stream as blocks of complete lines (files and pipes)
- ``lines``: a block split into lines, without a Python loop per line
- ``formats``: the format registry; each format turns lines into ``fields`` (the seam)
- ``rows``: where a line becomes a row (or a reject, with its reason)
- ``batch``: partition, encode, write and commit each batch, in order
- ``state``: what one run shares (config, store, progress, keys)
- ``migrate``, ``custody``: keyed digests for older stores; proving a file against its batches
"""
