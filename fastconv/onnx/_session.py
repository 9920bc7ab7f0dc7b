"""InferenceSession: onnxruntime's API on fastconv's kernels."""
import os
import threading
import time

import numpy as np

from fastconv.config import blas_one_thread, get_fast_math, get_num_threads, set_num_threads

from ._graph import Node, Unsupported, decode_attribute, malformed, unsupported
from ._ops import OPS, ConcatTarget, numpy_dtype
from ._optimize import check_dag, optimize

#: the opsets of the default domain this importer reads (ONNX's later
#: versions of the CNN operators only add element types; opset 6 is what
#: onnx's pytorch-converted tests use)
MIN_OPSET = 6

_TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
               7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32",
               13: "uint64", 16: "bfloat16"}


def _type_name(code):
    """ONNX element type code -> onnxruntime's spelling ("float"), else ONNX's name."""
    if code in _TYPE_NAMES:
        return _TYPE_NAMES[code]
    from onnx import TensorProto
    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return str(code)


class NodeArg:
    """A graph input or output, as onnxruntime describes it: ``name``,
    ``shape`` (ints, with a string for a symbolic dimension and None for an
    unknown one) and ``type`` (e.g. ``"tensor(float)"``)."""

    __slots__ = ("name", "shape", "type")

    def __init__(self, name, shape, type):
        self.name, self.shape, self.type = name, shape, type

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


def _load(model):
    import onnx
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        m = onnx.ModelProto()
        try:
            m.ParseFromString(bytes(model))
        except Exception as e:   # protobuf's DecodeError
            raise ValueError(f"fastconv.onnx: the bytes given are not an ONNX model: {e}") from None
        return m
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise FileNotFoundError(f"fastconv.onnx: no such model file: {os.fspath(model)!r}")
        try:
            return onnx.load(os.fspath(model))
        except Exception as e:
            raise ValueError(f"fastconv.onnx: {os.fspath(model)!r} is not an ONNX model: "
                             f"{e}") from None
    raise TypeError(f"InferenceSession: expected a path, bytes or an onnx.ModelProto, "
                    f"got {type(model).__name__}")


#: initializers above this many elements are left out of the model that
#: the checker and shape inference see (both serialize it: seconds for VGG)
_OUTLINE_MAX_ELEMENTS = 4096


def _outline(model):
    """The model with its large initializers turned into graph inputs of the
    same type and shape: what checking and shape inference need of them."""
    import onnx
    big = [t for t in model.graph.initializer if np.prod(t.dims) > _OUTLINE_MAX_ELEMENTS]
    if not big:
        return model
    out = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                  "doc_string"):
        setattr(out, field, getattr(model, field))
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    g, src = out.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    big_names = {t.name for t in big}
    g.initializer.extend(t for t in src.initializer if t.name not in big_names)
    g.input.extend(src.input)
    listed = {i.name for i in src.input}
    g.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                   for t in big if t.name not in listed)
    return out


def _shape_of(vi):
    """ValueInfoProto -> list of int / str (symbolic) / None, or None if unranked."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in t.shape.dim]


class _Context:
    """What the op compilers may know before running."""

    #: the session's fast math (Conv nodes may take the Winograd path)
    fast_math = False

    def __init__(self, constants, infos):
        self.constants, self.infos = constants, infos

    def const(self, name):
        return self.constants.get(name) if name else None

    def shape(self, name):
        c = self.constants.get(name)
        if c is not None:
            return c.shape
        info = self.infos.get(name)
        if info is None or info[1] is None:
            return None
        return tuple(d if isinstance(d, int) and d > 0 else None for d in info[1])

    def dtype(self, name):
        c = self.constants.get(name)
        if c is not None:
            return c.dtype
        info = self.infos.get(name)
        if info is None or info[0] not in _NP_TYPES:
            return None
        return _NP_TYPES[info[0]]


_NP_TYPES = {1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8),
             4: np.dtype(np.uint16), 5: np.dtype(np.int16), 6: np.dtype(np.int32),
             7: np.dtype(np.int64), 9: np.dtype(np.bool_), 11: np.dtype(np.float64),
             12: np.dtype(np.uint32), 13: np.dtype(np.uint64)}


class _BufferPool:
    """Reusable output buffers for the convolutions: a buffer goes back to
    the pool once the last tensor reading it (the value or a view of it)
    is dead, and is handed to a later layer or the next run of the same
    shapes; buffers that leave as graph outputs become the caller's."""

    def __init__(self):
        self.free = {}     # (dtype, elements) -> [flat buffers]
        self.owned = {}    # id(buffer) -> buffer, every buffer of the pool
        self.reserved = 0

    def alloc(self, shape, dtype):
        count = 1
        for d in shape:
            if d <= 0:
                return None   # conv2d reports the impossible geometry itself
            count *= d
        stack = self.free.get((dtype, count))
        if stack:
            return stack.pop().reshape(shape)
        buf = np.empty(count, dtype)
        self.owned[id(buf)] = buf
        self.reserved += buf.nbytes
        return buf.reshape(shape)

    def release(self, root):
        if id(root) in self.owned:
            self.free.setdefault((root.dtype, root.size), []).append(root)

    def disown(self, root):
        if self.owned.pop(id(root), None) is not None:
            self.reserved -= root.nbytes

    def clear(self):
        self.free.clear()
        self.owned.clear()
        self.reserved = 0


class InferenceSession:
    """Run an ONNX model with fastconv, as ``onnxruntime.InferenceSession``::

        sess = fastconv.onnx.InferenceSession("model.onnx")
        (logits,) = sess.run(None, {sess.get_inputs()[0].name: x})

    ``path_or_bytes``: a file path, the serialized bytes or an
    ``onnx.ModelProto``.  ``sess_options``: an ``onnxruntime.SessionOptions``
    (or anything with ``intra_op_num_threads`` / ``graph_optimization_level``);
    ``intra_op_num_threads > 0`` sets fastconv's threads during ``run``.
    ``providers`` is accepted and ignored (fastconv runs on the CPU).

    At creation the graph is checked (an unsupported operator, attribute,
    element type or dynamic dimension raises NotImplementedError naming the
    node and opset), constants are folded, batch norms folded into
    convolutions, activations fused into them and every convolution's
    weights packed once.  A symbolic first (batch) dimension is supported.

    ``tune`` (default on, off with graph optimisations disabled): the first
    run with inputs of a new shape times conv2d's methods on each Conv and
    keeps the fastest (that run is slower).  ``profile=True`` records each
    node's kernel time over the runs: ``profile_stats()``.

    ``fast_math`` (default None: ``fastconv.get_fast_math()`` when the session
    is created; True / False overrides it): Conv nodes with constant 3x3
    weights, strides and dilations 1 get their weights Winograd-transformed
    once, here, and run on the Winograd path for the input shapes where
    ``fastconv.winograd_pays(..., packed=True)`` says it pays (tuned: there it
    is one more candidate, timed against the others).  Its error is a few
    times the direct path's (docs/DESIGN.md, "Winograd").  Each Conv kernel's
    ``last_method`` tells what its last run took.
    """

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None,
                 profile=False, tune=True, fast_math=None, **kwargs):
        import onnx
        if fast_math is not None and not isinstance(fast_math, (bool, np.bool_)):
            raise TypeError(f"InferenceSession: fast_math must be None or a bool, got "
                            f"{fast_math!r}")
        #: whether Conv nodes may take the Winograd path (fixed at creation)
        self.fast_math = get_fast_math() if fast_math is None else bool(fast_math)
        #: per-node wall time of every run when ``profile`` (see ``profile_stats``)
        self._profile = {} if profile else None
        model = _load(path_or_bytes)
        outline = _outline(model)
        try:
            onnx.checker.check_model(outline)
        except onnx.checker.ValidationError as e:
            raise ValueError(f"fastconv.onnx: malformed model: {e}") from None
        self._threads = int(getattr(sess_options, "intra_op_num_threads", 0) or 0)
        level = getattr(sess_options, "graph_optimization_level", None)
        level = 0 if level is not None and int(level) == 0 else 1   # ORT_DISABLE_ALL == 0
        graph = model.graph
        self._opset = self._default_opset(model)

        try:
            inferred = onnx.shape_inference.infer_shapes(outline, data_prop=True).graph
        except Exception:   # inference is only a help; the run checks shapes itself
            inferred = graph
        infos = {}
        for vi in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
            infos[vi.name] = (vi.type.tensor_type.elem_type, _shape_of(vi))

        from onnx import numpy_helper
        constants = {}
        for t in graph.initializer:
            if t.data_type not in _NP_TYPES:
                raise Unsupported(f"fastconv.onnx: initializer {t.name!r} has element type "
                                  f"{_type_name(t.data_type)}, not supported")
            try:
                constants[t.name] = numpy_helper.to_array(t)
            except Exception as e:   # data not matching the dims, say
                raise ValueError(f"fastconv.onnx: malformed model: initializer {t.name!r}: "
                                 f"{e}") from None
        if len(graph.sparse_initializer):
            raise Unsupported("fastconv.onnx: sparse initializers are not supported")

        nodes = []
        for k, p in enumerate(graph.node):
            name = p.name or f"{p.op_type}_{k}"
            n = Node(p.op_type, name, p.input, p.output,
                     {a.name: decode_attribute(a) for a in p.attribute}, self._opset)
            if p.domain not in ("", "ai.onnx"):
                raise unsupported(n, f"domain {p.domain!r}")
            nodes.append(n)
        first_reader = {}
        for n in nodes:
            for v in n.inputs:
                first_reader.setdefault(v, n)

        self._inputs = []
        for vi in graph.input:
            if vi.name in constants:
                continue   # an initializer listed as an input (IR < 4) is not one
            self._inputs.append(self._check_input(vi, first_reader.get(vi.name)))
        self._outputs = [NodeArg(vi.name, _shape_of(vi),
                                 f"tensor({_type_name(vi.type.tensor_type.elem_type)})")
                         for vi in graph.output]
        out_names = {o.name for o in self._outputs}
        in_names = [i.name for i in self._inputs]
        check_dag(nodes, set(constants) | set(in_names) | {""})

        ctx = _Context(constants, infos)
        ctx.fast_math = self.fast_math
        self._ctx = ctx
        nodes = optimize(nodes, constants, ctx, out_names, self._compile_node, level)
        self._tune = bool(tune) and level > 0
        self._build(nodes, constants, in_names, [o.name for o in self._outputs])
        self.nodes = nodes   # the optimised graph, for inspection

    # ---- creation ----------------------------------------------------------
    @staticmethod
    def _default_opset(model):
        opset = None
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                opset = o.version
        import onnx.defs
        if opset is None:
            raise ValueError("fastconv.onnx: malformed model: no opset for the default domain")
        if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
            raise Unsupported(f"fastconv.onnx: opset {opset} is not supported (opsets "
                              f"{MIN_OPSET}-{onnx.defs.onnx_opset_version()} are)")
        return opset

    def _check_input(self, vi, reader):
        where = f"graph input {vi.name!r}" + (f" (read by {reader.where()})" if reader else "")
        if not vi.type.HasField("tensor_type"):
            raise Unsupported(f"fastconv.onnx: {where}: only tensor inputs are supported")
        code = vi.type.tensor_type.elem_type
        if code not in _NP_TYPES:
            raise Unsupported(f"fastconv.onnx: {where}: element type "
                              f"{_type_name(code)} is not supported")
        shape = _shape_of(vi)
        if shape is None:
            raise Unsupported(f"fastconv.onnx: {where}: an input of unknown rank is not supported")
        for k, d in enumerate(shape):
            if not isinstance(d, int) and k != 0:
                raise Unsupported(f"fastconv.onnx: {where}: dynamic dimension {k} ({d!r}) of "
                                  f"shape {shape} is not supported (only the first, batch "
                                  f"dimension may be symbolic)")
        return NodeArg(vi.name, shape, f"tensor({_TYPE_NAMES[code]})")

    def _compile_node(self, node):
        compiler = OPS.get(node.op_type)
        if compiler is None:
            raise unsupported(node, "this operator")
        if any(hasattr(v, "kind") for v in node.attrs.values()):
            raise unsupported(node, "a graph / sparse-tensor attribute")
        import onnx.defs
        try:
            onnx.defs.get_schema(node.op_type, node.opset, "")
        except onnx.defs.SchemaError:
            raise unsupported(node, "this operator at this opset") from None
        return compiler(node, self._ctx)

    def _build(self, nodes, constants, in_names, out_names):
        """Slots, compiled steps and when each intermediate dies."""
        slot = {"": 0}   # slot 0 holds None: an absent optional input
        for name in in_names:
            slot[name] = len(slot)
        for name in constants:
            slot.setdefault(name, len(slot))
        for n in nodes:
            for v in n.outputs:
                if v:
                    slot.setdefault(v, len(slot))
        for name in out_names:
            if name not in slot:
                raise ValueError(f"fastconv.onnx: malformed model: graph output {name!r} "
                                 f"is never produced")
        self._pool = _BufferPool()
        last_use = {}
        for k, n in enumerate(nodes):
            for v in n.inputs:
                last_use[v] = k
        keep = set(out_names) | set(in_names) | set(constants) | {""}
        steps = []
        self._concat_targets = {n.name: ConcatTarget(n.fused["in_place"]) for n in nodes
                                if "in_place" in n.fused}
        for k, n in enumerate(nodes):
            kernel = self._compile_node(n)
            if n.name in self._concat_targets:
                kernel.target = self._concat_targets[n.name]
            if "concat_into" in n.fused:
                name, index = n.fused["concat_into"]
                kernel.concat_into = (self._concat_targets[name], index)
            if hasattr(kernel, "alloc"):
                kernel.alloc = self._pool.alloc
            if hasattr(kernel, "tune"):
                kernel.tune = self._tune
            ins = list(n.inputs)
            while ins and not ins[-1]:
                ins.pop()   # trailing absent inputs: the kernel's defaults
            # values read here for the last time (or never read at all)
            dead = sorted({slot[v] for v in ins if v and last_use[v] == k and v not in keep} |
                          {slot[v] for v in n.outputs if v and v not in last_use and
                           v not in keep})
            steps.append((kernel, tuple(slot[v] for v in ins),
                          tuple(slot[v] if v else -1 for v in n.outputs), tuple(dead), n))
        self._steps = steps
        self._slot = slot
        self._template = [None] * (len(slot) + 1)   # the last slot: unused outputs
        for name, value in constants.items():
            self._template[slot[name]] = value
        self._const_ids = {id(v) for v in constants.values()}
        self._const_ids |= {id(v.base) for v in constants.values() if v.base is not None}
        self._in_slots = [slot[name] for name in in_names]
        self._out_slot = {name: slot[name] for name in out_names}
        self._last_shapes = None
        self._lock = threading.Lock()
        self.peak_bytes = 0
        self.constant_bytes = sum(v.nbytes for v in constants.values())

    # ---- API ---------------------------------------------------------------
    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def get_modelmeta(self):
        return None

    def memory_stats(self):
        """Bytes: ``peak`` of the intermediate tensors alive at once in the
        last run, ``pool`` reserved for reuse between runs, ``constants``
        (weights, packed copies not counted)."""
        return {"peak": self.peak_bytes, "pool": self._pool.reserved,
                "constants": self.constant_bytes}

    def profile_stats(self, reset=False):
        """With ``profile=True``: {node name: (op type, total seconds, runs)}
        over the runs so far (the fused op's kernel time, as optimised);
        ``reset`` starts the count again after reading it."""
        if self._profile is None:
            raise ValueError("profile_stats: the session was not created with profile=True")
        with self._lock:
            stats = {k: tuple(v) for k, v in self._profile.items()}
            if reset:
                self._profile.clear()
        return stats

    def _check_feed(self, input_feed):
        if not isinstance(input_feed, dict):
            raise TypeError(f"run: input_feed must be a dict of input name -> array, "
                            f"got {type(input_feed).__name__}")
        expected = [i.name for i in self._inputs]
        unknown = [k for k in input_feed if k not in expected]
        if unknown:
            raise ValueError(f"run: invalid input name(s) {unknown}; the model's inputs are "
                             f"{expected}")
        missing = [k for k in expected if k not in input_feed]
        if missing:
            raise ValueError(f"run: missing input(s) {missing}; the model's inputs are {expected}")
        arrays = []
        for arg in self._inputs:
            x = input_feed[arg.name]
            if not isinstance(x, np.ndarray):
                x = np.asarray(x)
            want = _NP_TYPES[_CODES[arg.type]]
            if x.dtype != want:
                raise ValueError(f"run: input {arg.name!r} has dtype {x.dtype}, the model "
                                 f"expects {arg.type} ({want})")
            if x.ndim != len(arg.shape) or any(
                    isinstance(d, int) and d != s for d, s in zip(arg.shape, x.shape)):
                raise ValueError(f"run: input {arg.name!r} has shape {list(x.shape)}, the model "
                                 f"expects {arg.shape}")
            arrays.append(x)
        return arrays

    def run(self, output_names, input_feed, run_options=None):
        """-> list of NumPy arrays, one per name in ``output_names`` (None: all)."""
        if output_names is None:
            output_names = [o.name for o in self._outputs]
        else:
            output_names = list(output_names)
            bad = [o for o in output_names if o not in self._out_slot]
            if bad:
                raise ValueError(f"run: invalid output name(s) {bad}; the model's outputs are "
                                 f"{list(self._out_slot)}")
        arrays = self._check_feed(input_feed)
        shapes = tuple(a.shape for a in arrays)
        if self._threads:
            saved = get_num_threads()
            set_num_threads(self._threads)
        try:
            # one run at a time (they share the buffer pool); BLAS on one thread
            # between fastconv's OpenMP kernels (config.blas_one_thread)
            with self._lock, blas_one_thread():
                if shapes != self._last_shapes:   # other sizes: the pooled buffers would not fit
                    self._pool.clear()
                    self._last_shapes = shapes
                env = self._execute(arrays)
                outs = self._outputs_of(env, output_names, arrays)
        finally:
            if self._threads:
                set_num_threads(saved)
        return outs

    def _outputs_of(self, env, output_names, arrays):
        outs = []
        for name in output_names:
            v = env[self._out_slot[name]]
            root = v if v.base is None else v.base
            if id(root) in self._const_ids or any(
                    v is a or root is a or (a.base is not None and root is a.base)
                    for a in arrays):
                v = v.copy()   # never hand out the session's constants or the caller's input
            outs.append(v)
        return outs

    def _execute(self, arrays):
        env = list(self._template)
        for target in self._concat_targets.values():
            target.reset()   # a failed run may have left one
        for s, a in zip(self._in_slots, arrays):
            env[s] = a
        const_ids = self._const_ids
        input_ids = {id(a) for a in arrays} | {id(a.base) for a in arrays if a.base is not None}
        pool = self._pool
        live = {}   # id(root buffer) -> [root, readers]
        current = peak = 0
        prof = self._profile
        for kernel, ins, outs, dead, node in self._steps:
            try:
                if prof is None:
                    res = kernel(*[env[i] for i in ins])
                else:
                    t0 = time.perf_counter()
                    res = kernel(*[env[i] for i in ins])
                    prof.setdefault(node.name, [node.op_type, 0.0, 0])
                    prof[node.name][1] += time.perf_counter() - t0
                    prof[node.name][2] += 1
            except (Unsupported, ValueError, TypeError) as e:
                raise type(e)(f"fastconv.onnx: {node.where()}: {e}") from e
            if len(outs) == 1:
                res = (res[0] if isinstance(res, tuple) else res,)
            for s, v in zip(outs, res):
                if type(v) is not np.ndarray:
                    v = np.asarray(v)   # NumPy returns scalars for 0-d results
                env[s] = v
                root = v if v.base is None else v.base
                rid = id(root)
                if rid in const_ids or rid in input_ids:
                    continue
                entry = live.get(rid)
                if entry is None:
                    live[rid] = [root, 1]
                    current += root.nbytes
                    peak = max(peak, current)
                else:
                    entry[1] += 1
            for s in dead:
                v = env[s]
                env[s] = None
                root = v if v.base is None else v.base
                entry = live.get(id(root))
                if entry is None:
                    continue
                entry[1] -= 1
                if entry[1] == 0:
                    del live[id(root)]
                    current -= root.nbytes
                    pool.release(root)
        for root, _ in live.values():   # held by outputs: now the caller's
            pool.disown(root)
        self.peak_bytes = peak
        return env


_CODES = {f"tensor({v})": k for k, v in _TYPE_NAMES.items()}
