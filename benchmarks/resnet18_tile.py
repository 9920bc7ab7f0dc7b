"""examples/resnet18.py with the Winograd tile plan forced: argv[1] is 4, 2 or 0
(0: the plan's rule, fc_winograd_choose_tile); the other arguments go to the
example.  The layers pack with tile="auto" (no input shape), so forcing the
plan forces their packs' tile size.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/resnet18_tile.py 0 \
        --batch 1 --threads 1 --method winograd --ort --version 1 --repeat 9
"""
import os
import runpy
import sys

from fastconv import _core

_core._winograd_tune(0, 0, int(sys.argv[1]))
sys.argv = ["examples/resnet18.py"] + sys.argv[2:]
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                            "resnet18.py"), run_name="__main__")
