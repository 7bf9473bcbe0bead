"""The lifecycle stage: where rows leave the store, and the evidence that they did.

- ``session``: the maintenance writer and its lock (purge, erase, compact, export, holds)
- ``rewrite``: partition rewrites: plan the rows a day keeps, then swap its files atomically
- ``retention``, ``manifests``: the purge by UTC event date and the chain of custody it may drop
- ``erase``, ``export``: a customer's or a visitor's rights (erasure; access and portability)
- ``holds``: legal holds, which the purge and erasure respect
- ``deletions``: proof of deletion records; ``verify``: every committed file against its checksum
- ``compact``: merging a day's small files
- ``audited``: the operator actions as the command line runs them, each with its audit record
"""
