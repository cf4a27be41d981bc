"""``python -m netwright``: the same command line as ``netwright``."""

from .cli import main

if __name__ == "__main__":
    main()
