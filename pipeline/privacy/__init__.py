"""The privacy stage: what stands between a visitor's raw address and the disk.

- ``mask``: truncation of client addresses, the privacy class of every string column, scrubbing of
  addresses and sensitive parameters from free text (the one place a column becomes safe to store)
- ``addresses``: every textual form of an address (lenient parsing, decoded views, spans in text)
- ``enrich``, ``geo``: keyed pseudonym and GeoIP/ASN from the full address, before it is discarded
- ``keys``, ``keyfiles``, ``digests``: per-period keys outside the store, their destruction
  (crypto-shredding), and the keyed digests made with them (pseudonyms, custody, stream identity)

The masker and the enricher call each other inside this folder; no other stage sees a raw address.
"""
