"""boltlink: a link shortener backend that ships as one file."""

__version__ = "0.1.0"
