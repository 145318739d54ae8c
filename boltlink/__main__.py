"""Entry point for `python -m boltlink` and for the pyz."""

from boltlink.cli import main

if __name__ == "__main__":
    main()
