"""Why the activation exists (same as ``python -m fastconv demo``).

Two stacked convolutions without an activation equal one convolution with the
composed kernel; with a ReLU between them they do not. Pre- vs post-activation
on the same data. See fastconv/demo.py.
"""
import os
import sys

try:
    import fastconv  # noqa: F401
except ImportError:  # run from a source checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
