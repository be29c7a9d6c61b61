"""The synthetic database written to disk in the layouts the real databases ship in (one module each).

Tests of the real readers read these exports back; each exporter can plant the quirks that
specs/datasets.md documents for its database, so every repair and drop of a reader is exercised.
"""
