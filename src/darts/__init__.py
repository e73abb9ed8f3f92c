"""DARTS: map retrogressive thaw slumps from Sentinel-2, ArcticDEM and TCVIS."""

__version__ = "0.1.0"
