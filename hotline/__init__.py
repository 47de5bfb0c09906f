"""hotline: telephony backend for China's 12345 government service hotlines."""

__version__ = "0.1.0"
