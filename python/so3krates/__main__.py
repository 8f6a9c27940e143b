"""`python -m so3krates COMMAND` (the same as the `so3krates` command; for torchrun --module)."""
import sys

from .cli import main

sys.exit(main())
