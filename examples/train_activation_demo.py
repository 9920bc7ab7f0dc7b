"""Does a CNN need activations?  Answered with training (same as
``python -m fastconv demo --train``).

The same small CNN trained without activations, with ReLU and in the ResNet v2
pre-activation order, on scikit-learn's digits and on a synthetic task no
linear model can solve (the XOR of the brightness of the two image halves);
test accuracy per epoch, a PNG of the curves, the linear CNN folded into one
linear map that predicts exactly the same, a logistic regression next to it,
and seconds per epoch next to torch.  Needs scikit-learn
(``pip install 'fastconv[train]'``).  See fastconv/train_demo.py.
"""
import os
import sys

try:
    import fastconv  # noqa: F401
except ImportError:  # run from a source checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv.train_demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
