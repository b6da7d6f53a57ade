"""``python -m brandstudio.cli``."""

from . import main

main()
