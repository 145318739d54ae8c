"""boltlink: a link shortener backend that ships as one file."""

__version__ = "0.1.0"


def build_id() -> str:
    """The id build.py gives the code in a pyz (a content hash); "dev" when run from a checkout."""
    try:
        from boltlink._build_info import BUILD_ID
    except ImportError:
        return "dev"
    return BUILD_ID
