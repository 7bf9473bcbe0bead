"""hostlogs: web-hosting access logs → privacy-safe, date-partitioned Parquet evidence store."""

__version__ = "0.1.0"
