"""`python -m vitkit ...` (what torchrun runs: `torchrun --nproc_per_node 2 -m vitkit train ...`)."""
import sys

from .cli.main import main

sys.exit(main())
