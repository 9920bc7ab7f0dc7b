"""fastconv.dask: conv2d and predict on dask arrays, against the float64
reference and the in-memory calls, on the threaded scheduler and on a
dask.distributed LocalCluster of two worker processes."""
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="fastconv.dask needs dask[array]")
import dask  # noqa: E402

import fastconv  # noqa: E402
import fastconv.dask as fd  # noqa: E402
from fastconv import Activation  # noqa: E402
from fastconv import layers as L  # noqa: E402

from reference import conv2d_act_ref  # noqa: E402
from test_conv2d import assert_close, fc_act  # noqa: E402

METHODS = ["auto", "fused", "separate", "im2col"]
ACTIVATIONS = [None, "relu", ("leaky_relu", {"negative_slope": 0.3}), "gelu", "tanh"]
# sigmoid(0) = 0.5: a pre-activation applied to the padding zeros would show
PRE_ACTIVATIONS = [None, "relu", "sigmoid"]


# --------------------------------------------------------------------------
# random configurations


def random_chunks(rng, size, halo):
    """A random partition of `size`: uneven, often with chunks smaller than
    the halo, sometimes one chunk (batch-chunked only)."""
    kind = rng.integers(4)
    if kind == 0 or size <= 1:
        return (size,)
    if kind == 1:   # tiny chunks, smaller than the halo
        step = int(rng.integers(1, max(2, halo)))
    else:
        step = int(rng.integers(1, size))
    out, left = [], size
    while left:
        c = min(left, max(1, step + int(rng.integers(-step // 2, step // 2 + 1))))
        out.append(c)
        left -= c
    return tuple(out)


def random_case(rng, dtype=np.float32):
    """A random valid conv2d configuration, its NumPy arrays and the chunking."""
    g = int(rng.choice([1, 1, 2, 3]))
    cin_g, cout_g = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    if rng.random() < 0.2:          # depthwise
        cin_g, g = 1, int(rng.integers(2, 5))
    c_in, c_out = cin_g * g, cout_g * g
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    r = rng.random()
    if r < 0.2 and stride == (1, 1):
        padding = "same"
        pads = None
    elif r < 0.3:
        padding = int(rng.integers(0, 4))
        pads = (padding,) * 4
    else:
        pads = tuple(int(p) for p in rng.integers(0, 5, size=4))
        padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    lo_h = max(1, ekh - (0 if pads is None else pads[0] + pads[1]))
    lo_w = max(1, ekw - (0 if pads is None else pads[2] + pads[3]))
    h, w = int(rng.integers(lo_h, lo_h + 25)), int(rng.integers(lo_w, lo_w + 25))
    n = int(rng.integers(1, 4))
    unbatched = rng.random() < 0.2
    data_format = "NHWC" if rng.random() < 0.4 else "NCHW"
    if data_format == "NCHW":
        xs, ws = (n, c_in, h, w), (c_out, cin_g, kh, kw)
    else:
        xs, ws = (n, h, w, c_in), (kh, kw, cin_g, c_out)
    if unbatched:
        xs = xs[1:]
    x = rng.standard_normal(xs).astype(dtype)
    wt = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if rng.random() < 0.7 else None
    halo = (max(ekh - stride[0], 1), max(ekw - stride[1], 1))
    hc, wc = random_chunks(rng, h, halo[0]), random_chunks(rng, w, halo[1])
    cc = (c_in,) if c_in == 1 or rng.random() < 0.7 else (1, c_in - 1)   # rechunked
    nc = random_chunks(rng, n, 1)
    if data_format == "NCHW":
        chunks = (nc, cc, hc, wc)
    else:
        chunks = (nc, hc, wc, cc)
    if unbatched:
        chunks = chunks[1:]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=g,
                  activation=ACTIVATIONS[rng.integers(len(ACTIVATIONS))],
                  pre_activation=PRE_ACTIVATIONS[rng.integers(len(PRE_ACTIVATIONS))],
                  method=METHODS[rng.integers(len(METHODS))], data_format=data_format)
    return x, wt, b, chunks, kwargs


def check_case(x, w, b, chunks, kwargs, scheduler=None, packed=False):
    """fastconv.dask.conv2d equals the reference and the in-memory call."""
    what = f"shape {x.shape} chunks {chunks} {kwargs}"
    xd = da.from_array(x, chunks=chunks)
    act, pre = kwargs["activation"], kwargs["pre_activation"]
    fc_kwargs = dict(kwargs, activation=fc_act(act), pre_activation=fc_act(pre))
    weight = fastconv.pack_weight(w, kwargs["groups"], data_format=kwargs["data_format"]) \
        if packed else w
    y = fd.conv2d(xd, weight, b, **fc_kwargs)
    in_memory = fastconv.conv2d(x, w, b, **fc_kwargs)
    assert y.shape == in_memory.shape and y.dtype == in_memory.dtype, what
    got = y.compute(scheduler=scheduler)
    ref, scale = conv2d_act_ref(x, w, b, kwargs["stride"], kwargs["padding"],
                                kwargs["dilation"], kwargs["groups"], activation=act,
                                pre_activation=pre, data_format=kwargs["data_format"])
    assert_close(got, ref, scale, x.dtype, what=what)
    # and the in-memory call to float rounding (a block may use another kernel)
    np.testing.assert_allclose(got, in_memory, rtol=1e-5,
                               atol=1e-5 * max(float(np.abs(in_memory).max()), 1.0),
                               err_msg=what)
    return y


# --------------------------------------------------------------------------
# conv2d, threaded scheduler


@pytest.mark.parametrize("seed", range(60))
def test_conv2d_random_threaded(rng, seed):
    x, w, b, chunks, kwargs = random_case(rng)
    check_case(x, w, b, chunks, kwargs, scheduler="threads")


@pytest.mark.parametrize("seed", range(6))
def test_conv2d_random_float64_packed(rng, seed):
    x, w, b, chunks, kwargs = random_case(rng, np.float64)
    kwargs["method"] = "auto"
    check_case(x, w, b, chunks, kwargs, scheduler="threads", packed=True)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_conv2d_chunks_match_blocks(rng, data_format):
    """Every block has the shape the array's chunks declare (dask does not
    check this on compute), each output block is one task, and the output
    chunking follows the input's, divided by the stride."""
    from dask.array.utils import assert_eq
    x = rng.standard_normal((3, 5, 37, 29) if data_format == "NCHW" else (3, 37, 29, 5))
    x = x.astype(np.float32)
    w = rng.standard_normal((6, 5, 3, 3) if data_format == "NCHW" else (3, 3, 5, 6))
    w = w.astype(np.float32)
    chunks = ((2, 1), (5,), (10, 1, 2, 24), (7, 7, 15)) if data_format == "NCHW" else \
        ((2, 1), (10, 1, 2, 24), (7, 7, 15), (5,))
    xd = da.from_array(x, chunks=chunks)
    y = fd.conv2d(xd, w, None, stride=2, padding=((1, 2), (0, 3)), data_format=data_format)
    expect = fastconv.conv2d(x, w, None, stride=2, padding=((1, 2), (0, 3)),
                             data_format=data_format)
    assert_eq(y, expect, rtol=1e-5, atol=1e-5 * np.abs(expect).max())
    h_axis = 2 if data_format == "NCHW" else 1
    # output o goes with the input chunk holding row/column 2*o, whatever the
    # padding: rows 0-9 -> outputs 0-4, 10 -> 5, 11-12 -> 6, 13-36 -> 7-18;
    # columns 0-6 -> 0-3, 7-13 -> 4-6, 14-28 -> 7-14
    assert y.chunks[h_axis] == (5, 1, 1, 12)
    assert y.chunks[h_axis + 1] == (4, 3, 8)
    same = fd.conv2d(xd, w, None, padding="same", dilation=2, data_format=data_format)
    assert same.chunks[h_axis:h_axis + 2] == xd.chunks[h_axis:h_axis + 2]
    conv_keys = [k for k in dict(y.__dask_graph__()) if k[0] == y.name]
    assert len(conv_keys) == int(np.prod(y.numblocks))


def test_conv2d_padding_only_blocks(rng):
    """Zero-size chunks and an empty image padded to a valid size: blocks
    that read nothing but padding give activation(bias)."""
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    check_case(x, w, b, ((2,), (3,), (0, 4, 0, 5), (3, 0, 5)),
               dict(stride=1, padding=2, dilation=1, groups=1, activation="relu",
                    pre_activation="sigmoid", method="auto", data_format="NCHW"),
               scheduler="threads")
    empty = np.zeros((1, 3, 0, 4), np.float32)
    y = fd.conv2d(da.from_array(empty, chunks=(1, 3, 0, 2)), w, b, padding=((2, 1), (1, 1)),
                  activation="relu").compute(scheduler="threads")
    np.testing.assert_array_equal(y, fastconv.conv2d(empty, w, b, padding=((2, 1), (1, 1)),
                                                     activation="relu"))
    np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(b, 0)[None, :, None, None],
                                                     y.shape))


def test_conv2d_is_lazy_and_rechunks_channels(rng):
    x = rng.standard_normal((2, 6, 20, 20)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    calls = []

    def spy(block):
        calls.append(block.shape)
        return block

    xd = da.from_array(x, chunks=(1, 2, 7, 20)).map_blocks(
        spy, meta=np.empty((0, 0, 0, 0), np.float32))
    y = fd.conv2d(xd, w, padding=1)
    assert calls == []
    assert y.chunks[1] == (4,)
    got = y.compute(scheduler="threads")
    np.testing.assert_allclose(got, fastconv.conv2d(x, w, padding=1), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------
# errors: the same as fastconv.conv2d, when the graph is built


BAD_CALLS = [
    # (x shape, w shape, kwargs)
    ((2, 4, 10, 10), (6, 3, 3, 3), {}),                          # channel mismatch
    ((2, 4, 10, 10), (6, 2, 3, 3), {"groups": 3}),               # groups vs out channels
    ((2, 6, 10, 10), (6, 2, 3, 3), {"groups": 2}),               # groups vs in channels
    ((2, 4, 3, 3), (6, 4, 5, 5), {}),                            # kernel larger than input
    ((2, 4, 10, 10), (6, 4, 3, 3), {"padding": "same", "stride": 2}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"padding": -1}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"stride": 0}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"dilation": (1, 2, 3)}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"activation": "nope"}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"method": "fast"}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"data_format": "HWCN"}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"bias": np.zeros(5, np.float32)}),
    ((2, 4, 10, 10), (6, 4, 3, 3), {"bias": np.zeros(6, np.float64)}),
    ((4, 10, 10), (6, 4, 3), {}),                                # 3-D weight
    ((10, 10), (6, 4, 3, 3), {}),                                # 2-D input
    ((2, 10, 10, 4), (3, 3, 3, 6), {"data_format": "NHWC"}),      # NHWC channel mismatch
]


@pytest.mark.parametrize("xs,ws,kwargs", BAD_CALLS)
def test_errors_match_conv2d_at_graph_build(xs, ws, kwargs):
    x = np.zeros(xs, np.float32)
    w = np.zeros(ws, np.float32)
    kwargs = dict(kwargs)
    bias = kwargs.pop("bias", None)
    with pytest.raises((ValueError, TypeError)) as expected:
        fastconv.conv2d(x, w, bias, **kwargs)
    with pytest.raises(expected.type) as got:
        fd.conv2d(da.from_array(x, chunks=3), w, bias, **kwargs)   # raises before compute
    assert str(got.value) == str(expected.value)


def test_errors_specific_to_dask(rng):
    w = np.zeros((2, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        fd.conv2d(np.zeros((1, 3, 8, 8), np.float32), w)
    with pytest.raises(TypeError, match="float32 or float64"):
        fd.conv2d(da.zeros((1, 3, 8, 8), dtype=np.int32, chunks=4), w)
    with pytest.raises(ValueError, match="num_threads must be positive"):
        fd.conv2d(da.zeros((1, 3, 8, 8), dtype=np.float32, chunks=4), w, num_threads=0)
    with pytest.raises(TypeError, match="num_threads"):
        fd.conv2d(da.zeros((1, 3, 8, 8), dtype=np.float32, chunks=4), w, num_threads=1.5)
    x = da.zeros((4, 3, 8, 8), dtype=np.float32, chunks=2)
    unknown = x[x[:, 0, 0, 0] > -1]   # unknown batch chunk sizes
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fd.conv2d(unknown, w)
    packed = fastconv.pack_weight(np.zeros((4, 3, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="packed for groups=2"):
        fd.conv2d(x, packed)


# --------------------------------------------------------------------------
# pickling: everything a graph holds must travel to worker processes


def test_packed_weight_and_activation_pickle(rng):
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    packed = fastconv.pack_weight(w, groups=2)
    clone = pickle.loads(pickle.dumps(packed))
    assert isinstance(clone, type(packed)) and clone.groups == 2
    np.testing.assert_array_equal(clone.weight, w)
    assert not clone.weight.flags.writeable
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    act = Activation("leaky_relu", negative_slope=0.25)
    act2 = pickle.loads(pickle.dumps(act))
    assert act2 == act and act2.params == act.params
    np.testing.assert_array_equal(fastconv.conv2d(x, clone, None, groups=2, activation=act2),
                                  fastconv.conv2d(x, packed, None, groups=2, activation=act))


# --------------------------------------------------------------------------
# predict


def small_cnn(data_format="channels_last", channels=3):
    fastconv.layers.set_random_seed(1)
    shape = (12, 12, channels) if data_format == "channels_last" else (channels, 12, 12)
    return L.Sequential([
        L.Conv2D(8, 3, padding="same", activation="relu", data_format=data_format),
        L.MaxPooling2D(2, data_format=data_format),
        L.DepthwiseConv2D(3, activation="relu6", data_format=data_format),
        L.Conv2D(8, 1, strides=2, data_format=data_format),
        L.GlobalAveragePooling2D(data_format=data_format),
        L.Dense(5, activation="softmax"),
    ], input_shape=shape)


def small_functional_model():
    fastconv.layers.set_random_seed(2)
    inp = L.Input((10, 10, 4))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(4, 3, padding="same")(y)
    y = L.Add(activation="relu")([y, inp])
    y = L.Flatten()(y)
    return L.Model(inp, L.Dense(3)(y))


def assert_predict_equal(got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5,
                               atol=1e-6 * max(float(np.abs(expected).max()), 1.0))


@pytest.mark.parametrize("batch_size", [None, 3])
def test_predict_sequential(rng, batch_size):
    model = small_cnn()
    x = rng.standard_normal((23, 12, 12, 3)).astype(np.float32)
    xd = da.from_array(x, chunks=((5, 1, 10, 7), (6, 6), 12, 3))   # H chunked: rechunked
    y = fd.predict(model, xd, batch_size=batch_size)
    assert y.chunks == ((5, 1, 10, 7), (5,))
    assert_predict_equal(y.compute(scheduler="threads"), model.predict(x))


def test_predict_functional_model_and_nchw(rng):
    model = small_functional_model()
    x = rng.standard_normal((17, 10, 10, 4)).astype(np.float32)
    assert_predict_equal(fd.predict(model, da.from_array(x, chunks=4)).compute(scheduler="threads"),
                         model.predict(x))
    nchw = small_cnn("channels_first", channels=2)
    x = rng.standard_normal((9, 2, 12, 12)).astype(np.float32)
    y = fd.predict(nchw, da.from_array(x, chunks=(2, 2, 12, 12)))
    assert_predict_equal(y.compute(scheduler="threads"), nchw.predict(x))


class DuckSession:
    """The ONNX Runtime session API (run / get_inputs), over a fastconv model."""

    class _Input:
        name = "images"

    def __init__(self, model):
        self.model = model
        self.batches = []

    def get_inputs(self):
        return [self._Input()]

    def run(self, output_names, feeds):
        assert output_names is None and list(feeds) == ["images"]
        self.batches.append(feeds["images"].shape[0])
        return [self.model.predict(feeds["images"])]


class DuckPredictor:
    def __init__(self, model):
        self.model = model

    def predict(self, x):
        return self.model.predict(x)


def test_predict_duck_typed_session_and_predictor(rng):
    model = small_cnn()
    x = rng.standard_normal((11, 12, 12, 3)).astype(np.float32)
    xd = da.from_array(x, chunks=5)
    session = DuckSession(model)
    assert_predict_equal(fd.predict(session, xd, batch_size=2).compute(scheduler="sync"),
                         model.predict(x))
    # one probe sample, then chunks of 5, 5, 1 in calls of at most 2 (any order)
    assert sorted(session.batches) == sorted([1] + [2, 2, 1] * 2 + [1])
    assert_predict_equal(fd.predict(DuckPredictor(model), xd).compute(scheduler="threads"),
                         model.predict(x))


def test_predict_onnxruntime_session(rng, tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs onnx to build a model")
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = str(tmp_path / "conv.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((10, 3, 8, 8)).astype(np.float32)
    got = fd.predict(sess, da.from_array(x, chunks=4)).compute(scheduler="threads")
    assert_predict_equal(got, sess.run(None, {"x": x})[0])
    # and the same as fastconv's own conv2d
    np.testing.assert_allclose(got, fastconv.conv2d(x, w, b, padding=1, activation="relu"),
                               rtol=1e-5, atol=1e-5)


def test_predict_errors(rng):
    model = small_cnn()
    xd = da.zeros((4, 12, 12, 3), dtype=np.float32, chunks=2)
    with pytest.raises(TypeError, match="predict\\(x\\) method"):
        fd.predict(object(), xd)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        fd.predict(model, xd, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        fd.predict(model, xd, batch_size=2.0)
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        fd.predict(model, np.zeros((4, 12, 12, 3), np.float32))
    # the model's own check of the sample shape, at graph build
    with pytest.raises(ValueError) as expected:
        model.predict(np.zeros((1, 12, 12, 4), np.float32))
    with pytest.raises(ValueError) as got:
        fd.predict(model, da.zeros((4, 12, 12, 4), dtype=np.float32, chunks=2))
    assert str(got.value) == str(expected.value)
    inp = L.Input((4,))
    two = L.Model(inp, [L.Dense(2)(inp), L.Dense(3)(inp)])
    with pytest.raises(TypeError, match="2 outputs"):
        fd.predict(two, da.zeros((4, 4), dtype=np.float32, chunks=2))


class ThreadRecorder:
    """A model that records the fastconv thread setting it runs under."""

    def __init__(self):
        self.seen = []

    def predict(self, x):
        self.seen.append(fastconv.get_num_threads())
        return x[:, :1]


def test_num_threads_set_in_task_and_restored():
    if not fastconv.config.config()["openmp"]:
        pytest.skip("fastconv was built without OpenMP: one thread always")
    xd = da.zeros((8, 3), dtype=np.float32, chunks=1)
    main_before = fastconv.get_num_threads()
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):
        baseline = ThreadRecorder()
        fd.predict(baseline, xd, num_threads=None).compute(scheduler="threads")
        for n in (1, 3):
            rec = ThreadRecorder()
            fd.predict(rec, xd, num_threads=n).compute(scheduler="threads")
            assert set(rec.seen) == {n}     # the probe (this thread) and every task
        after = ThreadRecorder()
        fd.predict(after, xd, num_threads=None).compute(scheduler="threads")
    assert set(after.seen) == set(baseline.seen)   # the worker threads were restored
    assert fastconv.get_num_threads() == main_before


# --------------------------------------------------------------------------
# dask.distributed: two worker processes


def _fastconv_file():
    return os.path.realpath(fastconv.__file__)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes (one thread each), closed after
    this module's tests; not made the default scheduler."""
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed")
    # the workers are new interpreters: let them import this (in-place) fastconv
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None, silence_logs=40)
    cl = distributed.Client(cluster, set_as_default=False)
    try:
        def worker_fastconv():   # nested: cloudpickle sends it by value
            import os.path
            import fastconv as f
            return os.path.realpath(f.__file__)
        try:
            where = cl.run(worker_fastconv)
        except Exception as e:   # pragma: no cover - depends on the environment
            where = {"error": repr(e)}
        if len(where) != 2 or set(where.values()) != {_fastconv_file()}:
            pytest.skip(f"the worker processes do not import this fastconv "
                        f"({_fastconv_file()}): {where}")
        yield cl
    finally:
        cl.close()
        cluster.close()


# Only fastconv objects go into the graphs below: the workers need not
# import this test module.
@pytest.mark.parametrize("seed", range(8))
def test_conv2d_random_distributed(client, rng, seed):
    x, w, b, chunks, kwargs = random_case(rng)
    if seed < 2:   # an Activation object with parameters must pickle too
        kwargs["activation"] = ("leaky_relu", {"negative_slope": 0.3})
    check_case(x, w, b, chunks, kwargs, scheduler=client, packed=seed % 2 == 1)


def test_predict_distributed(client, rng):
    model = small_cnn()
    x = rng.standard_normal((40, 12, 12, 3)).astype(np.float32)
    got = fd.predict(model, da.from_array(x, chunks=(7, 12, 12, 3))).compute(scheduler=client)
    assert_predict_equal(got, model.predict(x))
    fmodel = small_functional_model()
    x = rng.standard_normal((13, 10, 10, 4)).astype(np.float32)
    y = fd.predict(fmodel, da.from_array(x, chunks=5), batch_size=2)
    assert_predict_equal(y.compute(scheduler=client), fmodel.predict(x))
