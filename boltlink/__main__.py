"""Entry point for `python -m boltlink` (the pyz starts boltlink.entry:main too)."""

from boltlink.entry import main

if __name__ == "__main__":
    main()
