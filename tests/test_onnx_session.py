"""fastconv.onnx.InferenceSession: the API, its errors, the graph rewrites,
and real networks against torch, onnxruntime and a float64 NumPy reference."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fastconv.onnx needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastconv.onnx as fo  # noqa: E402
import onnx_models as M  # noqa: E402
from reference import activation_ref, conv2d_ref  # noqa: E402


# ---- helpers ----------------------------------------------------------------
def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8,
               dtype=np.float32):
    """inputs/outputs: (name, shape) tensors of `dtype` (float32 / float64),
    an output shape None for the inferred one; initializers: name -> array."""
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, elem, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    if any(s is None for _, s in outputs):
        inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
        inferred.update({vi.name: vi for vi in
                         onnx.shape_inference.infer_shapes(model).graph.output})
        for vi in model.graph.output:
            if vi.name in inferred and inferred[vi.name].type.tensor_type.HasField("shape"):
                vi.CopyFrom(inferred[vi.name])
            elif not vi.type.tensor_type.HasField("shape"):   # a rank is needed: say 4-D
                for d in "abcd":
                    vi.type.tensor_type.shape.dim.add().dim_param = d
    return model


def ort_session(model):
    ort = pytest.importorskip("onnxruntime", reason="comparison with onnxruntime")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def conv_relu_model(rng, c_in=3, c_out=4, hw=8):
    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], "relu")]
    return make_model(nodes, [("x", ["N", c_in, hw, hw])], [("y", ["N", c_out, hw, hw])],
                      {"w": w, "b": b}), w, b


def fused(sess, op_type):
    return [n for n in sess.nodes if n.op_type == op_type]


# ---- the API ----------------------------------------------------------------
def test_inputs_outputs_and_run_like_onnxruntime(rng, tmp_path):
    model, w, b = conv_relu_model(rng)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ref = np.maximum(conv2d_ref(x, w, b, padding=(1, 1, 1, 1)), 0)
    for source in (str(path), path, model, model.SerializeToString()):
        sess = fo.InferenceSession(source, providers=["CPUExecutionProvider"])
        (inp,) = sess.get_inputs()
        assert (inp.name, inp.shape, inp.type) == ("x", ["N", 3, 8, 8], "tensor(float)")
        (out,) = sess.get_outputs()
        assert (out.name, out.type) == ("y", "tensor(float)")
        ys = sess.run(None, {"x": x})
        assert isinstance(ys, list) and len(ys) == 1
        np.testing.assert_allclose(ys[0], ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sess.run(["y"], {"x": x})[0], ref, rtol=1e-5, atol=1e-5)


def test_initializer_listed_as_input_is_not_an_input():
    # IR 3 (the light models) lists every initializer among the graph inputs
    sess = fo.InferenceSession(M.light_model_path("squeezenet"))
    assert [i.name for i in sess.get_inputs()] == ["data_0"]
    assert sess.get_inputs()[0].shape == [1, 3, 224, 224]


def test_sess_options_threads_and_disabled_optimisations(rng):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime.SessionOptions")
    model, w, b = conv_relu_model(rng)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = fo.InferenceSession(model, sess_options=so)
    assert [n.op_type for n in plain.nodes] == ["Conv", "Relu"]
    fast = fo.InferenceSession(model)
    assert [n.op_type for n in fast.nodes] == ["Conv"]
    np.testing.assert_allclose(plain.run(None, {"x": x})[0], fast.run(None, {"x": x})[0],
                               rtol=1e-6, atol=1e-6)


def test_backend_rep_runs_lists_and_dicts(rng):
    model, w, b = conv_relu_model(rng)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    rep = fo.Backend.prepare(model, "CPU")
    ref = np.maximum(conv2d_ref(x, w, b, padding=(1, 1, 1, 1)), 0)
    np.testing.assert_allclose(rep.run([x])[0], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rep.run({"x": x})["y"], ref, rtol=1e-5, atol=1e-5)
    assert fo.Backend.supports_device("CPU") and not fo.Backend.supports_device("CUDA")
    with pytest.raises(ValueError, match="CPU"):
        fo.Backend.prepare(model, "CUDA")


# ---- errors -----------------------------------------------------------------
def test_run_errors_name_the_input(rng):
    model, _, _ = conv_relu_model(rng)
    sess = fo.InferenceSession(model)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"invalid input name.*'z'.*\['x'\]"):
        sess.run(None, {"z": x})
    with pytest.raises(ValueError, match=r"missing input.*'x'"):
        sess.run(None, {})
    with pytest.raises(ValueError, match=r"'x' has dtype float64.*tensor\(float\)"):
        sess.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(ValueError, match=r"'x' has shape \[1, 3, 9, 8\].*\['N', 3, 8, 8\]"):
        sess.run(None, {"x": np.zeros((1, 3, 9, 8), np.float32)})
    with pytest.raises(ValueError, match=r"'x' has shape \[3, 8, 8\]"):
        sess.run(None, {"x": x[0]})
    with pytest.raises(ValueError, match=r"invalid output name.*'nope'"):
        sess.run(["nope"], {"x": x})
    with pytest.raises(TypeError, match="dict"):
        sess.run(None, [x])


def test_unsupported_operator_is_refused_at_creation_naming_it():
    nodes = [helper.make_node("Relu", ["x"], ["r"], "first"),
             helper.make_node("NonMaxSuppression", ["r", "x"], ["y"], "nms_7")]
    model = make_model(nodes, [("x", [1, 4, 4])], [("y", None)], opset=13)
    with pytest.raises(NotImplementedError, match=r"NonMaxSuppression node 'nms_7' \(opset 13\)"):
        fo.InferenceSession(model)


def test_conv_transpose_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="reference transposed convolution")
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)   # (C, M / group, kH, kW)
    b = rng.standard_normal(6).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], "up1", strides=[2, 3],
                              pads=[1, 0, 0, 1], dilations=[1, 2], output_padding=[1, 0],
                              group=2)]
    model = make_model(nodes, [("x", [2, 4, 5, 4])], [("y", None)], {"w": w, "b": b})
    x = rng.standard_normal((2, 4, 5, 4)).astype(np.float32)
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    t = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
        torch.from_numpy(b.astype(np.float64)), stride=(2, 3), padding=0,
        output_padding=(1, 0), groups=2, dilation=(1, 2)).numpy()
    t = t[:, :, 1:t.shape[2], 0:t.shape[3] - 1]   # ONNX pads (1, 0) rows, (0, 1) columns
    np.testing.assert_allclose(y, t, rtol=1e-5, atol=1e-5)
    w3 = rng.standard_normal((3, 2, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], "up3")]
    model = make_model(nodes, [("x", [1, 3, 4, 4, 4])], [("y", [1, 2, 6, 6, 6])], {"w": w3})
    with pytest.raises(NotImplementedError, match=r"ConvTranspose node 'up3' \(opset 17\): 3-D"):
        fo.InferenceSession(model)


@pytest.mark.parametrize("case", ["3d_conv", "3d_pool", "bn_training", "cubic", "indices"])
def test_unsupported_attributes_are_refused_at_creation(rng, case):
    if case == "3d_conv":
        w = rng.standard_normal((2, 2, 3, 3, 3)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], "c3")]
        model = make_model(nodes, [("x", [1, 2, 5, 5, 5])], [("y", None)], {"w": w})
        match = r"Conv node 'c3' \(opset 17\): 3-D convolution"
    elif case == "3d_pool":
        nodes = [helper.make_node("MaxPool", ["x"], ["y"], "p3", kernel_shape=[2, 2, 2])]
        model = make_model(nodes, [("x", [1, 2, 4, 4, 4])], [("y", None)])
        match = r"MaxPool node 'p3' \(opset 17\): 3-D pooling"
    elif case == "bn_training":
        c = {k: np.ones(2, np.float32) for k in "smbv"}
        nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], "bn",
                                  training_mode=1)]
        model = make_model(nodes, [("x", [1, 2, 3, 3])], [("y", None)], c)
        match = r"BatchNormalization node 'bn' \(opset 17\): training_mode=1"
    elif case == "cubic":
        scales = np.array([1, 1, 2, 2], np.float32)
        nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], "rs", mode="cubic")]
        model = make_model(nodes, [("x", [1, 2, 3, 3])], [("y", None)], {"scales": scales})
        match = r"Resize node 'rs' \(opset 17\): mode='cubic'"
    else:
        nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], "mp", kernel_shape=[2, 2])]
        model = make_model(nodes, [("x", [1, 2, 4, 4])], [("y", None)])
        model.graph.output.append(helper.make_tensor_value_info("i", TensorProto.INT64,
                                                                [1, 2, 2, 2]))
        match = r"MaxPool node 'mp' \(opset 17\): the Indices output"
    with pytest.raises(NotImplementedError, match=match):
        fo.InferenceSession(model)


def test_dynamic_non_batch_dimension_is_refused(rng):
    model, _, _ = conv_relu_model(rng)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(NotImplementedError, match=r"'x' \(read by Conv node 'conv' "
                                                  r"\(opset 17\)\): dynamic dimension 2"):
        fo.InferenceSession(model)


def test_unsupported_dtype_is_refused(rng):
    model, _, _ = conv_relu_model(rng)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    with pytest.raises((NotImplementedError, ValueError), match="float16|FLOAT16"):
        fo.InferenceSession(model)


def test_malformed_models_are_value_errors(rng, tmp_path):
    with pytest.raises(ValueError, match="not an ONNX model"):
        fo.InferenceSession(b"\x00\x01 certainly not protobuf \xff" * 3)
    nodes = [helper.make_node("Relu", ["t"], ["y"], "r1"),
             helper.make_node("Relu", ["x"], ["t"], "r0")]   # out of order
    with pytest.raises(ValueError, match="malformed"):
        fo.InferenceSession(make_model(nodes, [("x", [2])], [("y", [2])]))
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        fo.InferenceSession(42)
    with pytest.raises(FileNotFoundError):
        fo.InferenceSession(str(tmp_path / "missing.onnx"))


# ---- graph rewrites, against a float64 NumPy reference -----------------------
def test_batchnorm_and_activation_fold_into_conv(rng):
    c = 5
    w = rng.standard_normal((c, 3, 3, 3)).astype(np.float32)
    bn = dict(s=rng.uniform(0.5, 1.5, c), b=rng.standard_normal(c), m=rng.standard_normal(c),
              v=rng.uniform(0.5, 1.5, c))
    inits = {"w": w, **{k: v.astype(np.float32) for k, v in bn.items()}}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", strides=[2, 2],
                              auto_pad="SAME_UPPER"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], "bn",
                              epsilon=1e-3),
             helper.make_node("LeakyRelu", ["n"], ["y"], "act", alpha=0.2)]
    model = make_model(nodes, [("x", [1, 3, 9, 9])], [("y", None)], inits)
    sess = fo.InferenceSession(model)
    (conv,) = sess.nodes
    assert conv.fused["activation"].name == "leaky_relu" and "scale" in conv.fused
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    # TensorFlow-style SAME_UPPER for stride 2 on 9: total pad 2 -> (1, 1)
    y = conv2d_ref(x, w, stride=2, padding=(1, 1, 1, 1))
    y = (y - bn["m"][:, None, None]) / np.sqrt(bn["v"][:, None, None] + 1e-3) * \
        bn["s"][:, None, None] + bn["b"][:, None, None]
    ref = activation_ref("leaky_relu", y, negative_slope=0.2)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [9, 13])
def test_clip_as_relu6_fuses_into_conv(rng, opset):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 3
    inits = {"w": w}
    if opset >= 11:
        inits.update(lo=np.array(0, np.float32), hi=np.array(6, np.float32))
        clip = helper.make_node("Clip", ["c", "lo", "hi"], ["y"], "clip")
    else:
        clip = helper.make_node("Clip", ["c"], ["y"], "clip", min=0.0, max=6.0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[0, 1, 2, 0]), clip]
    model = make_model(nodes, [("x", [1, 3, 7, 7])], [("y", None)], inits, opset=opset)
    sess = fo.InferenceSession(model)
    (conv,) = sess.nodes
    assert conv.fused["activation"].name == "relu6"
    x = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    ref = np.clip(conv2d_ref(x, w, padding=(0, 2, 1, 0)), 0, 6)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)


def test_pre_activation_fuses_only_without_other_readers(rng):
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    # r = relu(x) read by one Conv (fused, ResNet v2) ...
    nodes = [helper.make_node("Relu", ["x"], ["r"], "pre"),
             helper.make_node("Conv", ["r", "w1"], ["y"], "conv", pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", [2, 3, 6, 6])], [("y", None)], {"w1": w1})
    sess = fo.InferenceSession(model)
    (conv,) = sess.nodes
    assert conv.fused["pre_activation"].name == "relu"
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    ref = conv2d_ref(np.maximum(x, 0), w1, padding=(1, 1, 1, 1))   # padding zeros after the ReLU
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)
    # ... and also read by an Add: it must be computed on its own
    nodes = [helper.make_node("Relu", ["x"], ["r"], "pre"),
             helper.make_node("Conv", ["r", "w2"], ["c"], "conv"),
             helper.make_node("Add", ["c", "r"], ["y"], "add")]
    model = make_model(nodes, [("x", [2, 3, 6, 6])], [("y", None)], {"w2": w2})
    sess = fo.InferenceSession(model)
    # (the Add is the Conv's fused residual join; the ReLU stays its own node)
    assert [n.op_type for n in sess.nodes] == ["Relu", "Conv"]
    assert "pre_activation" not in sess.nodes[1].fused and sess.nodes[1].fused["residual"]
    ref = conv2d_ref(np.maximum(x, 0), w2) + np.maximum(x, 0)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)


def test_add_relu_join_and_hardsigmoid_with_onnx_defaults(rng):
    w = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["s"], "join"),
             helper.make_node("Relu", ["s"], ["r"], "relu"),
             # ONNX's HardSigmoid default alpha 0.2 is not fastconv's 1/6: not fused
             helper.make_node("Conv", ["r", "w"], ["d"], "conv2"),
             helper.make_node("HardSigmoid", ["d"], ["y"], "hs")]
    model = make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], {"w": w})
    sess = fo.InferenceSession(model)
    # the join and its ReLU fused into the first Conv (its residual input)
    assert [n.op_type for n in sess.nodes] == ["Conv", "Conv", "HardSigmoid"]
    assert sess.nodes[0].fused["residual"] and sess.nodes[0].inputs[3] == "x"
    assert sess.nodes[0].fused["activation"].name == "relu"
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    r = np.maximum(conv2d_ref(x, w, padding=(1, 1, 1, 1)) + x, 0)
    ref = np.clip(0.2 * conv2d_ref(r, w) + 0.5, 0, 1)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)


def test_shape_chain_is_folded_when_static(rng):
    nodes = [helper.make_node("Shape", ["x"], ["s"], "shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], "gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], "unsq"),
             helper.make_node("Concat", ["n1", "minus1"], ["shape2"], "cat", axis=0),
             helper.make_node("Reshape", ["x", "shape2"], ["y"], "reshape")]
    inits = {"zero": np.array(0, np.int64), "zero1": np.array([0], np.int64),
             "minus1": np.array([-1], np.int64)}
    static = make_model(nodes, [("x", [2, 3, 4, 4])], [("y", None)], inits)
    sess = fo.InferenceSession(static)
    assert [n.op_type for n in sess.nodes] == ["Reshape"]
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x.reshape(2, -1))
    dynamic = make_model(nodes, [("x", ["N", 3, 4, 4])], [("y", None)], inits)
    sess = fo.InferenceSession(dynamic)
    assert "Shape" in [n.op_type for n in sess.nodes]   # the batch is known at run time only
    for n in (1, 5):
        x = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x.reshape(n, -1))


def test_buffers_are_reused_and_outputs_stay_the_callers(rng):
    model, w, b = conv_relu_model(rng)
    nodes = list(model.graph.node) + [
        helper.make_node("Conv", ["y", "w2"], ["z"], "conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["z"], ["z2"], "relu2"),
        helper.make_node("Conv", ["z2", "w2"], ["out"], "conv3", pads=[1, 1, 1, 1])]
    w2 = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    model = make_model(nodes, [("x", ["N", 3, 8, 8])], [("out", None)], {"w": w, "b": b, "w2": w2})
    sess = fo.InferenceSession(model)

    def ref(x):
        y = np.maximum(conv2d_ref(x, w, b, padding=(1, 1, 1, 1)), 0)
        y = np.maximum(conv2d_ref(y, w2, padding=(1, 1, 1, 1)), 0)
        return conv2d_ref(y, w2, padding=(1, 1, 1, 1))

    xs = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    outs = [sess.run(None, {"x": x})[0] for x in xs]
    for x, y in zip(xs, outs):   # a later run must not write into an earlier output
        np.testing.assert_allclose(y, ref(x), rtol=1e-4, atol=1e-4)
    stats = sess.memory_stats()
    one = 2 * 4 * 8 * 8 * 4
    # three intermediates of `one` bytes; at most two are alive at once
    assert stats["peak"] <= 2 * one + one and stats["pool"] <= 3 * one
    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)   # another batch size
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref(x), rtol=1e-4, atol=1e-4)


def test_concurrent_runs_from_threads(rng):
    import threading
    model, w, b = conv_relu_model(rng, c_in=3, c_out=8, hw=16)
    sess = fo.InferenceSession(model)
    xs = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    got = {}

    def work(k):
        for _ in range(20):
            got[k] = sess.run(None, {"x": xs[k]})[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, x in enumerate(xs):
        ref = np.maximum(conv2d_ref(x, w, b, padding=(1, 1, 1, 1)), 0)
        np.testing.assert_allclose(got[k], ref, rtol=1e-4, atol=1e-4)


def test_identity_model_returns_copies(rng):
    nodes = [helper.make_node("Identity", ["x"], ["y"], "id")]
    model = make_model(nodes, [("x", [2, 3])], [("y", [2, 3])])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)


def test_conv1d_and_float64(rng):
    w = rng.standard_normal((4, 2, 3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], "c1", pads=[2, 1], dilations=[2])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 2, 11])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 4, 10])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((1, 2, 11))
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    ref = conv2d_ref(x[:, :, None], w[:, :, None], padding=(0, 0, 2, 1), dilation=(1, 2))[:, :, 0]
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


# ---- networks exported from torch -------------------------------------------
@pytest.mark.parametrize("make", [M.resnet18_like, M.mobilenet_like])
def test_torch_exported_network_matches_torch_and_onnxruntime(rng, tmp_path, make):
    torch = pytest.importorskip("torch", reason="exporting a network from torch")
    net = make(torch, rng)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = M.export(torch, net, (1, 3, 64, 64), tmp_path / "net.onnx")
    sess = fo.InferenceSession(path)
    assert sess.get_inputs()[0].shape == ["batch", 3, 64, 64]
    ops = [n.op_type for n in sess.nodes]
    # every BatchNorm folded, every ReLU / ReLU6 fused into a Conv or an Add
    assert not {"BatchNormalization", "Relu", "Clip"} & set(ops), ops
    ort = ort_session(path)
    for batch in (1, 3):   # one session, any batch size
        x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        y = sess.run(None, {"input": x})[0]
        with torch.no_grad():
            t = net(torch.from_numpy(x)).numpy()
        o = ort.run(None, {"input": x})[0]
        assert y.shape == (batch, 10)
        np.testing.assert_allclose(y, t, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(y, o, rtol=1e-4, atol=1e-5)


# ---- the nine light models with random weights, against onnxruntime ---------
@pytest.mark.parametrize("name", M.LIGHT_MODELS)
def test_light_model_with_random_weights_matches_onnxruntime(rng, name):
    model = M.random_light_model(name, rng)
    iname, x = M.light_input(model, rng)
    # logits of order 1, so that atol 1e-5 is a float32-sized tolerance
    scale = np.abs(ort_session(model).run(None, {iname: x})[0]).max()
    M.scale_output(model, 1.0 / scale)
    o = ort_session(model).run(None, {iname: x})[0]
    sess = fo.InferenceSession(model)
    y = sess.run(None, {iname: x})[0]
    assert y.shape == o.shape
    np.testing.assert_allclose(y, o, rtol=1e-3, atol=1e-5)   # onnx's runner's tolerances


# ---- the CLI ------------------------------------------------------------------
def test_cli_run_writes_the_outputs(rng, tmp_path, capsys):
    from fastconv.__main__ import main
    model, w, b = conv_relu_model(rng)
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "y.npy")]) == 0
    ref = np.maximum(conv2d_ref(x, w, b, padding=(1, 1, 1, 1)), 0)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=1e-5, atol=1e-5)
    assert "y" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="x.*float64"):
        np.save(tmp_path / "x64.npy", x.astype(np.float64))
        main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x64.npy")])


def test_cli_bench_onnx_runs_both_and_checks_agreement(rng, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="bench --onnx compares with onnxruntime")
    from fastconv.__main__ import main
    model, _, _ = conv_relu_model(rng)
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert main(["bench", "--onnx", str(tmp_path / "m.onnx"), "--rounds", "4",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "fastconv" in out and "onnxruntime" in out and "speedup" in out
    diff = float(out.split("max |diff| ")[1].split(";")[0])
    assert diff < 1e-4   # the two sessions computed the same thing


def _max_pool_ref(x, k, s, d, pads, out_hw):
    """Plain loops in float64: -inf padding, each output the max of its taps."""
    n, c, h, w = x.shape
    t, _, l, _ = pads
    y = np.full((n, c) + tuple(out_hw), -np.inf)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            for a in range(k[0]):
                for b in range(k[1]):
                    r, q = i * s[0] - t + a * d[0], j * s[1] - l + b * d[1]
                    if 0 <= r < h and 0 <= q < w:
                        y[:, :, i, j] = np.maximum(y[:, :, i, j], x[:, :, r, q])
    return y


@pytest.mark.parametrize("k, s, d, pads, ceil", [
    ((3, 3), (2, 2), (1, 1), (0, 0, 0, 0), 0),     # SqueezeNet / AlexNet
    ((3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 0),     # ResNet
    ((3, 2), (1, 2), (2, 1), (2, 0, 1, 1), 0),     # dilated, asymmetric pads
    ((3, 3), (2, 2), (1, 1), (0, 0, 0, 0), 1),     # ceil_mode (GoogLeNet)
    ((2, 2), (3, 3), (1, 1), (1, 1, 1, 1), 1),     # windows that start in the padding
    ((2, 3), (1, 2), (1, 2), (0, 1, 1, 0), 0),     # dilated columns
])
@pytest.mark.parametrize("impl", ["c", "numpy-flat", "numpy-strided"])   # src/pool/pool.c, pool_by_taps
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_matches_loops(rng, monkeypatch, k, s, d, pads, ceil, impl, dtype):
    from fastconv.onnx import _ops
    monkeypatch.setattr(_ops, "MAX_POOL_IN_C", impl == "c")
    monkeypatch.setattr(_ops, "FLAT_COLUMNS_BELOW", 32 if impl == "numpy-flat" else 0)
    x = rng.standard_normal((2, 3, 10, 9)).astype(dtype)
    x[0, 1, 2, 3] = np.nan   # NaN wins its windows (a pixel every case reads)
    x[1, 2] = -np.inf
    node = helper.make_node("MaxPool", ["x"], ["y"], "mp", kernel_shape=list(k), strides=list(s),
                            dilations=list(d), pads=[pads[0], pads[2], pads[1], pads[3]],
                            ceil_mode=ceil)
    model = make_model([node], [("x", [2, 3, 10, 9])], [("y", None)], opset=12,
                       dtype=dtype)
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    assert y.dtype == dtype
    ref = _max_pool_ref(x, k, s, d, pads, y.shape[2:])
    assert np.isnan(ref).any()
    np.testing.assert_array_equal(y, ref)
    if dtype == np.float32:   # (onnxruntime: a NaN loses, -inf padding is -FLT_MAX: without)
        x = np.nan_to_num(x, nan=0.0, neginf=-5.0)
        o = ort_session(model).run(None, {"x": x})[0]
        assert y.shape == o.shape
        np.testing.assert_array_equal(fo.InferenceSession(model).run(None, {"x": x})[0], o)



def _avg_pool_ref(x, k, s, d, pads, out_hw, include_pad):
    """Plain loops in float64: the mean of the taps inside the input (inside
    the padded extent, padding counting as zeros, with include_pad)."""
    n, c, h, w = x.shape
    t, bottom, l, right = pads
    y = np.zeros((n, c) + tuple(out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            acc, count = np.zeros((n, c)), 0
            for a in range(k[0]):
                for b in range(k[1]):
                    r, q = i * s[0] - t + a * d[0], j * s[1] - l + b * d[1]
                    if 0 <= r < h and 0 <= q < w:
                        acc += x[:, :, r, q]
                    if (0 <= r < h and 0 <= q < w) or (
                            include_pad and -t <= r < h + bottom and -l <= q < w + right):
                        count += 1
            y[:, :, i, j] = acc / count if count else 0.0
    return y


@pytest.mark.parametrize("k, s, d, pads, ceil, include_pad", [
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 0, 0),     # Inception v2's branch pools
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 0, 1),     # ... counting the padding
    ((2, 2), (2, 2), (1, 1), (0, 0, 0, 0), 0, 0),     # DenseNet's transitions
    ((3, 2), (2, 1), (1, 1), (2, 0, 1, 1), 1, 1),     # asymmetric pads, ceil_mode
    ((3, 3), (2, 2), (1, 1), (0, 0, 0, 0), 1, 0),     # ceil_mode: partial last windows
    ((2, 3), (1, 2), (2, 1), (1, 0, 0, 1), 0, 1),     # dilated (opset 19)
])
@pytest.mark.parametrize("flat_below, by_conv", [(32, False), (0, False), (32, True)])
def test_average_pool_matches_loops(rng, monkeypatch, k, s, d, pads, ceil, include_pad,
                                    flat_below, by_conv):
    from fastconv.onnx import _ops   # the NumPy passes (columns flat / strided) or the conv
    monkeypatch.setattr(_ops, "FLAT_COLUMNS_BELOW", flat_below)
    monkeypatch.setattr(_ops, "AVERAGE_BY_CONV", by_conv)
    x = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    node = helper.make_node("AveragePool", ["x"], ["y"], "ap", kernel_shape=list(k),
                            strides=list(s), dilations=list(d),
                            pads=[pads[0], pads[2], pads[1], pads[3]],
                            ceil_mode=ceil, count_include_pad=include_pad)
    model = make_model([node], [("x", [2, 3, 10, 9])], [("y", None)], opset=19)
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    o = ort_session(model).run(None, {"x": x})[0]
    assert y.shape == o.shape
    np.testing.assert_allclose(y, _avg_pool_ref(x, k, s, d, pads, y.shape[2:], include_pad),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, o, rtol=1e-5, atol=1e-6)

def test_batchnorm_scale_layer_and_relu_become_one_step(rng):
    c = 4
    p = {k: rng.uniform(0.5, 1.5, c).astype(np.float32) for k in ("s", "v")}
    p.update({k: rng.standard_normal(c).astype(np.float32) for k in ("b", "m")})
    p["mul"] = rng.standard_normal((c, 1, 1)).astype(np.float32)   # Caffe's Scale layer
    p["add"] = rng.standard_normal((1, c, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"], "bn"),
             helper.make_node("Mul", ["n", "mul"], ["sc"], "scale"),
             helper.make_node("Add", ["sc", "add"], ["sh"], "shift"),
             helper.make_node("Relu", ["sh"], ["y"], "relu")]
    model = make_model(nodes, [("x", [2, c, 5, 5])], [("y", None)], p)
    sess = fo.InferenceSession(model)
    assert [n.op_type for n in sess.nodes] == ["BatchNormalization"]
    x = rng.standard_normal((2, c, 5, 5)).astype(np.float32)
    col = (lambda a: a.astype(np.float64).reshape(1, -1, 1, 1))
    ref = (x - col(p["m"])) / np.sqrt(col(p["v"]) + 1e-5) * col(p["s"]) + col(p["b"])
    ref = np.maximum(ref * col(p["mul"]) + col(p["add"]), 0)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-5)


def test_tuned_conv_methods_match_untuned_and_profile_names_each_node(rng):
    model = M.random_light_model("squeezenet", rng)
    iname, x = M.light_input(model, rng)
    tuned = fo.InferenceSession(model, profile=True)
    plain = fo.InferenceSession(model, tune=False)
    y = tuned.run(None, {iname: x})[0]   # the first run of this shape times the methods
    assert all(runs == 1 for _, _, runs in tuned.profile_stats(reset=True).values())
    y2 = tuned.run(None, {iname: x})[0]
    y2 = tuned.run(None, {iname: x})[0]
    chosen = [k._methods for k, *_ in tuned._steps if hasattr(k, "_methods")]
    assert chosen and all(list(m.values())[0] in ("fused", "im2col", "gemm1x1") for m in chosen)
    assert all(not k._methods for k, *_ in plain._steps if hasattr(k, "_methods"))
    ref = ort_session(model).run(None, {iname: x})[0]
    for out in (y, y2, plain.run(None, {iname: x})[0]):
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)
    stats = tuned.profile_stats()
    assert set(stats) == {n.name for n in tuned.nodes}
    assert all(runs == 2 and sec > 0 for _, sec, runs in stats.values())
    with pytest.raises(ValueError, match="profile=True"):
        plain.profile_stats()


@pytest.mark.parametrize("size, beta", [(5, 0.75), (4, 0.75), (3, 0.5), (2, 1.0), (7, 0.6)])
def test_lrn_matches_the_definition(rng, size, beta):
    c = 6
    x = rng.standard_normal((2, c, 4, 3)).astype(np.float32)
    alpha, bias = 2e-2, 1.5
    node = helper.make_node("LRN", ["x"], ["y"], "lrn", size=size, alpha=alpha, beta=beta,
                            bias=bias)
    model = make_model([node], [("x", [2, c, 4, 3])], [("y", [2, c, 4, 3])])
    y = fo.InferenceSession(model).run(None, {"x": x})[0]
    # ONNX's definition, channel by channel, in float64
    x64, ref = x.astype(np.float64), np.empty(x.shape)
    for k in range(c):
        lo, hi = max(0, k - (size - 1) // 2), min(c - 1, k + -(-(size - 1) // 2))
        sq = np.sum(x64[:, lo:hi + 1] ** 2, axis=1)
        ref[:, k] = x64[:, k] / (bias + alpha / size * sq) ** beta
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    if size % 2:   # onnxruntime refuses even sizes
        np.testing.assert_allclose(y, ort_session(model).run(None, {"x": x})[0], rtol=1e-5,
                                   atol=1e-6)


def test_concat_of_convs_is_written_in_place(rng, monkeypatch):
    """Two fire-module-like Concats of Convs (the second reading the first's
    output), and one whose Conv output has a second reader (not in place)."""
    w = {f"w{k}": (rng.standard_normal((co, ci, kk, kk)) * 0.3).astype(np.float32)
         for k, (co, ci, kk) in enumerate([(4, 3, 1), (5, 3, 3), (2, 9, 1), (3, 9, 3),
                                           (2, 3, 1), (2, 3, 1)])}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], "c0"),
             helper.make_node("Conv", ["x", "w1"], ["b"], "c1", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["ab"], "cat0", axis=1),
             helper.make_node("Relu", ["ab"], ["r"], "relu"),
             helper.make_node("Conv", ["r", "w2"], ["c"], "c2"),
             helper.make_node("Conv", ["r", "w3"], ["d"], "c3", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["c", "d"], ["y"], "cat1", axis=1),
             helper.make_node("Conv", ["x", "w4"], ["e"], "c4"),
             helper.make_node("Conv", ["x", "w5"], ["f"], "c5"),
             helper.make_node("Concat", ["e", "f"], ["ef"], "cat2", axis=1),
             helper.make_node("Mul", ["e", "f"], ["z"], "mul")]   # e, f read twice
    model = make_model(nodes, [("x", ["N", 3, 6, 7])], [("y", None), ("ef", None), ("z", None)],
                       w)
    sess = fo.InferenceSession(model)
    assert set(sess._concat_targets) == {"cat0", "cat1"}
    ref_sess = ort_session(model)
    copies = []
    concatenate = np.concatenate
    monkeypatch.setattr(np, "concatenate", lambda *a, **k: copies.append(1) or
                        concatenate(*a, **k))
    for batch in (1, 1, 2, 1):   # runs reuse the buffers; batch 2 concatenates by copying
        x = rng.standard_normal((batch, 3, 6, 7)).astype(np.float32)
        copies.clear()
        outs = sess.run(None, {"x": x})
        assert len(copies) == (1 if batch == 1 else 3)   # only cat2 copies at batch 1
        monkeypatch.undo()
        for out, ref in zip(outs, ref_sess.run(None, {"x": x})):
            np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(np, "concatenate", lambda *a, **k: copies.append(1) or
                            concatenate(*a, **k))
