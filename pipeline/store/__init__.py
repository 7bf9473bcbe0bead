"""The store: its layout, its one filesystem seam, the commit protocol and the Parquet encodings.

Every byte of the store is read and written here (``fs.StoreFS``); other stages call ``Store``'s
key-based methods with keys from ``layout``. Import the submodules themselves (``pipeline.store.commit``,
``.layout``, ``.parquet``...): this package imports nothing, so that a query, which needs the commit
protocol but not the Parquet encoder, starts without loading polars.
"""
