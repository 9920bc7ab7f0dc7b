"""fastconv on dask arrays: images and data sets larger than memory.

``conv2d(x, weight, ...)`` takes a dask array ``x`` and returns a lazy dask
array equal to ``fastconv.conv2d`` on the computed ``x``; ``predict(model,
x)`` runs a model over a batch-chunked dask array.  Both work on the threaded
scheduler and on ``dask.distributed`` (everything in the graph pickles,
packed weights and models included).

How ``conv2d`` splits the work
------------------------------
* The channel axis must be one chunk: a channel-chunked ``x`` is rechunked to
  one chunk along it first (``x.rechunk({channel_axis: -1})``).
* The output is chunked like the input: along the batch exactly as ``x``;
  along H and W output pixel ``o`` goes with the input chunk that holds input
  pixel ``o * stride``, so each input chunk of ``c`` pixels gives an output
  chunk of about ``c / stride`` (``padding='same'`` keeps the chunks as they
  are; a chunk that holds no such pixel gives none).  Every output pixel is
  computed once, by exactly one task.
* Each task reads the input rows and columns its output block needs: its own
  input chunk and a halo from the neighbouring chunks (about ``pad_lo``
  pixels before, ``dilation * (k - 1) + 1 - stride - pad_lo`` after; from several
  chunks when chunks are smaller than the halo, so any chunking works).  The
  halo slices are their own small tasks, so on a cluster only they travel
  between workers; chunks much smaller than the halo work but read their
  neighbours many times (rechunk them larger for speed).  The image's zero padding (explicit,
  asymmetric or ``'same'``) is applied by fastconv itself on the blocks at
  the true border only; ``pre_activation`` is therefore never applied to
  padding zeros, exactly as in memory.  A batch-chunked ``x`` (one chunk along
  H and W) is simply one fastconv call per chunk.
* A block may be computed by another kernel family than the whole image
  would be (the choice depends on the shape), so results agree with the
  in-memory call to float rounding, not bit for bit.

Threads
-------
Each dask task runs fastconv with ``num_threads`` OpenMP threads (default 1)
and restores the calling thread's setting afterwards.  dask runs one task
per worker thread (the threaded scheduler: one per core), so the default
keeps fastconv threads x dask threads at the core count.  With fewer dask
threads than cores (e.g. ``LocalCluster(n_workers=2, threads_per_worker=1)``
on an 8-core machine) raise ``num_threads`` so the product matches the cores;
``num_threads=None`` leaves fastconv's setting (``fastconv.set_num_threads``,
``OMP_NUM_THREADS``) as it is in the worker.  fastconv releases the GIL, so
dask's threads really run in parallel.  ``method="im2col"`` also uses NumPy's
BLAS, whose threads are BLAS's own (limit them with ``threadpoolctl``).

Errors
------
Arguments are checked when the graph is built, by the same code as
``fastconv.conv2d`` (on the full shapes), so a bad call raises the same
``ValueError``/``TypeError`` at once rather than inside a worker.
"""
import uuid

import numpy as np

try:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fastconv.dask needs dask[array] (pip install 'fastconv[dask]')") from e

from fastconv import _core
from fastconv.config import get_num_threads, set_num_threads
from fastconv.conv import METHODS, _padding, _plan, _positive_pair, conv2d as _conv2d

__all__ = ["conv2d", "predict"]


# ---------------------------------------------------------------------------
# argument checks shared by conv2d and predict

def _check_dask_array(x, where):
    if not isinstance(x, da.Array):
        raise TypeError(f"{where}: x must be a dask.array.Array, got {type(x).__name__} "
                        f"(use fastconv.conv2d / model.predict for in-memory arrays)")
    if any(np.isnan(s) for s in x.shape):
        raise ValueError(f"{where}: x has unknown chunk sizes (shape {x.shape}); call "
                         f"x.compute_chunk_sizes() first")


def _check_num_threads(num_threads, where):
    if num_threads is None:
        return None
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, (int, np.integer)):
        raise TypeError(f"{where}: num_threads must be a positive int or None, "
                        f"got {num_threads!r}")
    if num_threads <= 0:
        raise ValueError(f"{where}: num_threads must be positive, got {num_threads}")
    return int(num_threads)


def _with_threads(num_threads, fn, *args, **kwargs):
    """fn(*args, **kwargs) with this thread's fastconv threads set to
    num_threads (OpenMP's per-thread setting), restored afterwards."""
    if num_threads is None:
        return fn(*args, **kwargs)
    previous = get_num_threads()
    set_num_threads(num_threads)
    try:
        return fn(*args, **kwargs)
    finally:
        set_num_threads(previous)


# ---------------------------------------------------------------------------
# conv2d

class _Call:
    """The parameters every block of one conv2d shares (pickled with each task)."""

    def __init__(self, stride, dilation, groups, activation, pre_activation, method,
                 data_format, num_threads):
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.activation, self.pre_activation = activation, pre_activation
        self.method, self.data_format, self.num_threads = method, data_format, num_threads


class _Block:
    """One output block: the shape of the input region it reads, where each
    piece goes in it (offsets along H and W) and the image padding it gets."""

    def __init__(self, region_shape, axes, row_offsets, col_offsets, padding):
        self.region_shape, self.axes = region_shape, axes
        self.row_offsets, self.col_offsets = row_offsets, col_offsets
        self.padding = padding


def _axis_blocks(chunks, size_out, pad_lo, stride, dilation, kernel):
    """Split one spatial axis.  chunks: the input chunk sizes along it.

    Returns, per output block, (out_size, pad_lo, pad_hi, pieces), pieces
    being (input chunk index, start, stop) within that chunk, in order.
    """
    bounds = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    size_in = int(bounds[-1])
    # Output o is anchored at input row o*stride (where it would start without
    # padding) and belongs to the input chunk holding that row, so that the
    # output is chunked as the input divided by the stride whatever the
    # padding ('same' keeps the chunks).  The first output anchored at or
    # past boundary P is ceil(P / stride).
    out_bounds = {0, size_out}
    for p in bounds[1:-1]:
        out_bounds.add(min(-(-int(p) // stride), size_out))
    out_bounds = sorted(out_bounds)
    span = dilation * (kernel - 1) + 1
    blocks = []
    for o0, o1 in zip(out_bounds[:-1], out_bounds[1:]):
        lo = o0 * stride - pad_lo                 # the rows this block reads,
        hi = (o1 - 1) * stride - pad_lo + span    # padding included: [lo, hi)
        start, stop = max(lo, 0), min(hi, size_in)
        if stop <= start:   # only padding (an empty image, or padding wider than the kernel)
            blocks.append((o1 - o0, hi - lo, 0, []))
            continue
        pieces = []
        j = int(np.searchsorted(bounds, start, side="right")) - 1   # the chunk holding start
        while j < len(chunks) and bounds[j] < stop:
            c0, c1 = int(bounds[j]), int(bounds[j + 1])
            if c1 > c0:   # (zero-size chunks hold nothing)
                pieces.append((j, max(start, c0) - c0, min(stop, c1) - c0))
            j += 1
        blocks.append((o1 - o0, start - lo, hi - stop, pieces))
    return blocks


def _offsets(pieces):
    """Where each piece starts in the block's region, along one axis."""
    return [int(v) for v in np.cumsum([0] + [stop - start for _, start, stop in pieces[:-1]])]


def _take(chunk, index):
    """A piece of a chunk.  A small one (a halo) is copied, so that the chunk
    it came from can be freed before the block that needs it runs."""
    piece = chunk[index]
    return piece.copy() if 2 * piece.size < chunk.size else piece


def _assemble(pieces, block, dtype):
    """The input region of one block from its pieces (a [rows][cols] grid)."""
    if not pieces:
        return np.zeros(block.region_shape, dtype)
    if len(pieces) == 1 and len(pieces[0]) == 1:
        return pieces[0][0]
    h_axis, w_axis = block.axes
    region = np.empty(block.region_shape, dtype)
    index = [slice(None)] * region.ndim
    for row, r0 in zip(pieces, block.row_offsets):
        for piece, c0 in zip(row, block.col_offsets):
            index[h_axis] = slice(r0, r0 + piece.shape[h_axis])
            index[w_axis] = slice(c0, c0 + piece.shape[w_axis])
            region[tuple(index)] = piece
    return region


def _conv_block(pieces, weight, bias, call, block):
    dtype = weight.dtype
    x = _assemble(pieces, block, dtype)
    return _with_threads(call.num_threads, _conv2d, x, weight, bias, call.stride,
                         block.padding, call.dilation, call.groups,
                         activation=call.activation, pre_activation=call.pre_activation,
                         method=call.method, data_format=call.data_format)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           activation=None, pre_activation=None, method="auto", data_format="NCHW",
           num_threads=1):
    """``fastconv.conv2d`` on a dask array: a lazy dask array of the result.

    x : dask array (N, C, H, W) or (C, H, W); (N, H, W, C) / (H, W, C) for
        ``data_format="NHWC"``.  Any chunking along N, H and W; the channel
        axis is rechunked to one chunk if it is not.
    weight, bias, stride, padding, dilation, groups, activation,
    pre_activation, method, data_format : as ``fastconv.conv2d`` (weight may
        be a ``fastconv.pack_weight`` result; a dask weight or bias is computed
        once, here).
    num_threads : fastconv threads per dask task (default 1: one per dask
        worker thread); None leaves the worker's setting unchanged.

    The result is chunked like ``x`` along N; along H and W its chunk
    boundaries follow x's (divided by the stride).  See the module docstring.
    """
    where = "fastconv.dask.conv2d"
    _check_dask_array(x, where)
    num_threads = _check_num_threads(num_threads, where)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(weight, _core.PackedWeight):
        weight = np.asarray(weight)
    if bias is not None:
        bias = np.asarray(bias)
    # fastconv.conv2d's own checks, on the full shapes (nothing is computed)
    p = _plan(np.broadcast_to(np.zeros((), x.dtype), x.shape), weight, bias, stride, padding,
              dilation, groups, activation, pre_activation, data_format, prepare=False)
    sh, sw = _positive_pair(stride, "stride")
    dh, dw = _positive_pair(dilation, "dilation")
    kh, kw = p.w.shape[2:]
    top, bottom, left, right = _padding(padding, (kh, kw), (dh, dw), (sh, sw))
    _, c_out, h_out, w_out = p.shape_out

    batched = x.ndim == 4
    nhwc = data_format == "NHWC"
    first = 1 if batched else 0            # the first non-batch axis
    c_axis, h_axis, w_axis = (first + 2, first, first + 1) if nhwc else \
        (first, first + 1, first + 2)
    if len(x.chunks[c_axis]) > 1:          # every block needs all the channels
        x = x.rechunk({c_axis: -1})

    rows = _axis_blocks(x.chunks[h_axis], h_out, top, sh, dh, kh)
    cols = _axis_blocks(x.chunks[w_axis], w_out, left, sw, dw, kw)
    batch_chunks = x.chunks[0] if batched else (None,)

    call = _Call((sh, sw), (dh, dw), groups, activation, pre_activation, method,
                 data_format, num_threads)
    token = tokenize(x.name, weight.weight if isinstance(weight, _core.PackedWeight) else weight,
                     getattr(weight, "groups", None), bias, (sh, sw), (top, bottom, left, right),
                     (dh, dw), groups, repr(activation), repr(pre_activation), method,
                     data_format, num_threads)
    name = f"fastconv-conv2d-{token}"
    halo_name = f"fastconv-conv2d-halo-{token}"
    weight_key, bias_key = (f"fastconv-weight-{token}",), (f"fastconv-bias-{token}",)
    dsk = {weight_key: weight}
    if bias is not None:
        dsk[bias_key] = bias
    c_in = x.shape[c_axis]

    def in_key(b, r, c):
        idx = [0] * x.ndim
        if batched:
            idx[0] = b
        idx[h_axis], idx[w_axis] = r, c
        return (x.name,) + tuple(idx)

    n_halo = 0
    for b, nb in enumerate(batch_chunks):
        for i, (h_blk, pt, pb, row_pieces) in enumerate(rows):
            for j, (w_blk, pl, pr, col_pieces) in enumerate(cols):
                grid = []
                for r, r0, r1 in row_pieces:
                    line = []
                    for c, c0, c1 in col_pieces:
                        key = in_key(b, r, c)
                        if (r0, r1) != (0, x.chunks[h_axis][r]) or \
                                (c0, c1) != (0, x.chunks[w_axis][c]):
                            index = [slice(None)] * x.ndim
                            index[h_axis], index[w_axis] = slice(r0, r1), slice(c0, c1)
                            halo = (halo_name, n_halo)
                            n_halo += 1
                            dsk[halo] = (_take, key, tuple(index))
                            key = halo
                        line.append(key)
                    if line:
                        grid.append(line)
                if not (row_pieces and col_pieces):
                    grid = []   # a block that sees only padding reads nothing
                rh = sum(r1 - r0 for _, r0, r1 in row_pieces)
                rw = sum(c1 - c0 for _, c0, c1 in col_pieces)
                sizes = {h_axis: rh, w_axis: rw, c_axis: c_in}
                shape = ((nb,) if batched else ()) + tuple(sizes[a] for a in range(first, x.ndim))
                block = _Block(shape, (h_axis, w_axis), _offsets(row_pieces),
                               _offsets(col_pieces), ((pt, pb), (pl, pr)))
                out_idx = [0] * x.ndim
                if batched:
                    out_idx[0] = b
                out_idx[h_axis], out_idx[w_axis] = i, j
                dsk[(name,) + tuple(out_idx)] = (
                    _conv_block, grid, weight_key, bias_key if bias is not None else None,
                    call, block)

    out_chunks = [None] * x.ndim
    if batched:
        out_chunks[0] = x.chunks[0]
    out_chunks[c_axis] = (c_out,)
    out_chunks[h_axis] = tuple(blk[0] for blk in rows)
    out_chunks[w_axis] = tuple(blk[0] for blk in cols)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, tuple(out_chunks), dtype=p.dtype)


# ---------------------------------------------------------------------------
# predict

class _Runner:
    """Calls a model on one NumPy batch: ``model.predict(x)``, or
    ``session.run(None, {input_name: x})[0]`` for an ONNX-Runtime-style
    session (``run`` and ``get_inputs``)."""

    def __init__(self, model, batch_size, num_threads):
        if callable(getattr(model, "predict", None)):
            self.kind, self.input_name = "predict", None
        elif callable(getattr(model, "run", None)) and callable(getattr(model, "get_inputs", None)):
            inputs = model.get_inputs()
            if len(inputs) != 1:
                raise ValueError(f"fastconv.dask.predict: the session has {len(inputs)} inputs; "
                                 f"only single-input models are supported")
            self.kind, self.input_name = "run", inputs[0].name
        else:
            raise TypeError(f"fastconv.dask.predict: model must have a predict(x) method or be "
                            f"an inference session with run(None, {{name: x}}) and get_inputs(); "
                            f"got {type(model).__name__}")
        self.batch_size, self.num_threads = batch_size, num_threads
        from fastconv.layers._model import _Network
        self.fastconv_network = isinstance(model, _Network)

    def _call(self, model, x):
        if self.kind == "run":
            return model.run(None, {self.input_name: x})[0]
        if self.fastconv_network:   # its own batching, by batch_size (None: its default)
            return model.predict(x, batch_size=self.batch_size)
        return model.predict(x)

    def _batches(self, model, x):
        if self.batch_size is None or self.fastconv_network:
            return self._call(model, x)
        parts = [np.asarray(self._call(model, x[s:s + self.batch_size]))
                 for s in range(0, x.shape[0], self.batch_size)]
        return np.concatenate(parts) if parts else self._call(model, x)

    def __call__(self, model, x):
        y = _with_threads(self.num_threads, self._batches, model, x)
        if isinstance(y, (list, tuple)):
            raise TypeError(f"fastconv.dask.predict: the model returned {len(y)} outputs; "
                            f"only single-output models are supported")
        return np.asarray(y)


def _predict_block(x, model, runner):
    return runner(model, x)


def predict(model, x, batch_size=None, *, num_threads=1):
    """Run ``model`` over the samples of a dask array: a lazy dask array.

    model : a fastconv ``Sequential``/``Model``, any object with a
        ``predict(x)`` method, or an inference session with
        ``run(None, {input_name: x})`` and ``get_inputs()`` (ONNX Runtime's
        API).  On ``dask.distributed`` it must pickle (fastconv models do; an
        ``onnxruntime.InferenceSession`` does not).
    x : dask array (N, ...) of samples; chunks along N are the units of work
        (other axes are rechunked to one chunk).
    batch_size : samples per model call within a chunk (None: the model's
        own default for fastconv models, the whole chunk otherwise).
    num_threads : fastconv threads per dask task, as in ``conv2d``.

    The model is run once on one zero sample when the graph is built, to
    check it accepts x's sample shape and learn the output's shape and dtype.
    The result is chunked like x along N.
    """
    where = "fastconv.dask.predict"
    _check_dask_array(x, where)
    num_threads = _check_num_threads(num_threads, where)
    if batch_size is not None:
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"{where}: batch_size must be a positive int or None, "
                            f"got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"{where}: batch_size must be positive, got {batch_size}")
        batch_size = int(batch_size)
    if x.ndim < 1:
        raise ValueError(f"{where}: x must have a batch axis, got a 0-d array")
    runner = _Runner(model, batch_size, num_threads)
    probe = runner(model, np.zeros((1,) + x.shape[1:], x.dtype))
    if probe.ndim < 1 or probe.shape[0] != 1:
        raise ValueError(f"{where}: the model returned shape {probe.shape} for one sample of "
                         f"shape {(1,) + x.shape[1:]}; expected a batch axis of 1")
    if any(len(c) > 1 for c in x.chunks[1:]):   # a sample must be whole in its chunk
        x = x.rechunk({a: -1 for a in range(1, x.ndim)})

    token = uuid.uuid4().hex   # a model has no cheap deterministic token
    name = f"fastconv-predict-{token}"
    model_key = (f"fastconv-model-{token}",)
    dsk = {model_key: model}
    tail = (0,) * (x.ndim - 1)
    out_tail = (0,) * (probe.ndim - 1)
    for b in range(len(x.chunks[0])):
        dsk[(name, b) + out_tail] = (_predict_block, (x.name, b) + tail, model_key, runner)
    chunks = (x.chunks[0],) + tuple((d,) for d in probe.shape[1:])
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    return da.Array(graph, name, chunks, dtype=probe.dtype)

