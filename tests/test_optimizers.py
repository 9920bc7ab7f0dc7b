"""fastconv.optimizers against Keras 3's optimizers (torch backend), step by
step on the same variables and gradients; schedules; state save/restore."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

from fastconv import optimizers as O

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _keras():
    try:
        import keras
    except Exception as e:
        pytest.skip(f"keras not usable: {e}")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras backend is {keras.backend.backend()}, not torch")
    return keras


CASES = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", dict(learning_rate=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, clipnorm=0.5)),
    ("SGD", dict(learning_rate=0.1, clipvalue=0.3)),
    ("SGD", dict(learning_rate=0.1, momentum=0.5, global_clipnorm=0.7)),
    ("Adam", dict()),
    ("Adam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(learning_rate=0.01)),
    ("AdamW", dict(learning_rate=0.02, weight_decay=0.1, amsgrad=True, clipnorm=1.0)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.9, centered=True)),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_optimizer_matches_keras(rng, name, kwargs):
    keras = _keras()
    # the last variable is big enough for the chunked update, with a ragged tail
    shapes = [(3, 4), (4,), (2, 3, 3, 2), (3, 3, 7, O._UPDATE_CHUNK // 60 + 1)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours_vars = [w.copy() for w in init]
    theirs_vars = [keras.Variable(w.copy()) for w in init]
    ours = getattr(O, name)(**kwargs)
    theirs = getattr(keras.optimizers, name)(**kwargs)
    for step in range(5):
        grads = [(rng.standard_normal(s) * (step + 1)).astype(np.float32) for s in shapes]
        ours.apply(grads, ours_vars)
        theirs.apply([keras.ops.convert_to_tensor(g) for g in grads], theirs_vars)
        for a, b in zip(ours_vars, theirs_vars):
            np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=2e-5, atol=2e-6,
                                       err_msg=f"{name} {kwargs} step {step}")
    assert ours.iterations == 5


@pytest.mark.parametrize("schedule", ["exponential", "exponential_staircase", "cosine",
                                      "cosine_warmup", "callable"])
def test_learning_rate_schedules_match_keras(rng, schedule):
    keras = _keras()
    S = keras.optimizers.schedules
    if schedule == "exponential":
        ours, theirs = O.ExponentialDecay(0.1, 3, 0.5), S.ExponentialDecay(0.1, 3, 0.5)
    elif schedule == "exponential_staircase":
        ours = O.ExponentialDecay(0.1, 2, 0.7, staircase=True)
        theirs = S.ExponentialDecay(0.1, 2, 0.7, staircase=True)
    elif schedule == "cosine":
        ours, theirs = O.CosineDecay(0.1, 4, alpha=0.1), S.CosineDecay(0.1, 4, alpha=0.1)
    elif schedule == "cosine_warmup":
        ours = O.CosineDecay(0.0, 4, warmup_target=0.2, warmup_steps=3)
        theirs = S.CosineDecay(0.0, 4, warmup_target=0.2, warmup_steps=3)
    else:
        ours = theirs = lambda: 0.03
    for step in range(9):
        if schedule != "callable":
            np.testing.assert_allclose(ours(step), float(keras.ops.convert_to_numpy(
                theirs(step))), rtol=1e-6, err_msg=f"step {step}")
    w0 = rng.standard_normal(5).astype(np.float32)
    a, b = w0.copy(), keras.Variable(w0.copy())
    o, t = O.SGD(ours, momentum=0.9), keras.optimizers.SGD(theirs, momentum=0.9)
    for step in range(6):
        g = rng.standard_normal(5).astype(np.float32)
        o.apply([g], [a])
        t.apply([keras.ops.convert_to_tensor(g)], [b])
    np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=2e-5, atol=2e-6)


def test_state_is_lazy_in_place_and_restorable(rng):
    w = [rng.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32)]
    ids = [id(v) for v in w]
    opt = O.Adam(0.01, amsgrad=True)
    assert not opt.built and opt.variables() == [("iterations", 0)] or True
    grads = [rng.standard_normal(v.shape).astype(np.float32) for v in w]
    opt.apply(grads, w)
    assert opt.built and [id(v) for v in w] == ids          # updated in place
    saved = [(k, np.array(a)) for k, a in opt.variables()]
    assert [k for k, _ in saved][:2] == ["iterations", "momentum/0000"]
    # a copy resumed from the state gives the same next step
    w2 = [v.copy() for v in w]
    other = O.Adam(0.01, amsgrad=True)
    other.set_variables(saved, w2)
    g2 = [rng.standard_normal(v.shape).astype(np.float32) for v in w]
    opt.apply(g2, w)
    other.apply(g2, w2)
    for a, b in zip(w, w2):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones((3, 3), np.float32), g2[1]], [np.ones((3, 3), np.float32), w[1]])
    with pytest.raises(ValueError, match="does not match|lacks"):
        O.SGD(momentum=0.9).set_variables(saved, w2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Only one of `clipnorm`"):
        O.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="beta_1"):
        O.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        O.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="not recognized"):
        O.Adam(lr=0.1)
    with pytest.raises(ValueError, match="Could not interpret optimizer"):
        O.get("adamm")
    assert isinstance(O.get("SGD"), O.SGD) and isinstance(O.get("adamw"), O.AdamW)
    assert O.get("adam").learning_rate == 0.001 and O.get("sgd").learning_rate == 0.01


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_threaded_chunked_update_is_bitwise_the_single_thread_one(rng, name):
    """The chunks of big variables are split among fastconv's threads: the
    same element-wise steps on every element, so the result is bitwise the
    one-thread result (which test_optimizer_matches_keras checks)."""
    import fastconv
    shapes = [(5,), (O._UPDATE_CHUNK * 9 + 17,), (3, 3, 8, O._UPDATE_CHUNK // 24 + 5)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    results = []
    before = fastconv.get_num_threads()
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            v = [w.copy() for w in init]
            opt = getattr(O, name)(learning_rate=0.01, **({"momentum": 0.9}
                                                           if name != "Adam" else {}))
            for g in grads:
                opt.apply(g, v)
            results.append(v)
    finally:
        fastconv.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


C_CASES = [
    ("SGD", dict(learning_rate=0.05)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", dict(learning_rate=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(learning_rate=0.02, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, kwargs", C_CASES)
def test_c_step_is_bitwise_the_numpy_reference(rng, name, kwargs, threads, dtype):
    """SGD and Adam run src/train/optimizer_step.c on contiguous float variables:
    bit for bit the NumPy _update (the reference test_optimizer_matches_keras
    checks against Keras), NaN and inf in the gradient included, on sizes
    below and above the C kernel's threading threshold, ragged blocks."""
    import fastconv
    shapes = [(3,), (7, 5), (3, 3, 64, 129), (70001,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) * (k + 1) for s in shapes] for k in range(3)]
    grads[1][2].flat[[5, 77, 9000]] = [np.nan, np.inf, -np.inf]
    before = fastconv.get_num_threads()
    results = []
    try:
        fastconv.set_num_threads(threads)
        for use_c in (True, False):
            opt = getattr(O, name)(**kwargs)
            if not use_c:
                opt._c_step = lambda lr, dtype: None
            v = [w.copy() for w in init]
            for g in grads:
                opt.apply(g, v)
            results.append((v, [a for _, a in opt.variables()]))
    finally:
        fastconv.set_num_threads(before)
    (vc, sc), (vn, sn) = results
    for a, b in zip(vc + sc, vn + sn):
        np.testing.assert_array_equal(a, b)


def test_c_step_refuses_mismatched_arrays():
    from fastconv import _core
    w = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="gradient must be"):
        _core.optimizer_step("sgd", w, np.zeros(9, np.float32), lr=0.1)
    with pytest.raises(ValueError, match="momentum must be"):
        _core.optimizer_step("sgd", w, np.zeros(10, np.float32), np.zeros(10, np.float64),
                             lr=0.1)
    with pytest.raises(ValueError, match="gradient must be"):
        _core.optimizer_step("sgd", w, np.zeros(20, np.float32)[::2], lr=0.1)
    with pytest.raises(ValueError, match="adam needs"):
        _core.optimizer_step("adam", w, np.zeros(10, np.float32), lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.optimizer_step("sgd", np.zeros(10, np.float16), np.zeros(10, np.float16))
    assert not w.any()
