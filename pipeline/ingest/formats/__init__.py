"""ingest/formats"""
