"""Benchmark machinery shared by ``python -m fastconv bench`` and ``benchmarks/``.

One definition of the layer suite, the FLOP count, the reference check, the
peer runners (PyTorch eager, ONNX Runtime) and the timing, so that the
pytest-benchmark suite and the command line report measure the same thing.

Importable with NumPy alone: matplotlib, tqdm, torch, onnx and onnxruntime
are imported lazily and every one of them is optional.

One module a job: ``suite`` (the layers, paths, peers, inputs), ``reference``
(the float64 check), ``runners`` (fastconv / torch / ONNX Runtime runners and
the thread control), ``memory`` (workspace), ``timing`` (calibrated,
interleaved rounds), ``peak`` (the measured FMA peak and the stall probe),
``cases`` (one case, a group, the whole run), ``report`` (table, Markdown,
chart, JSON), ``onnx_models`` (``bench --onnx``) and ``backward``
(``bench --backward``).  Every name the rest of the repository uses is
importable from ``fastconv.bench`` itself; the command line is in
``fastconv/__main__.py``.
"""
from __future__ import annotations

from . import (backward, cases, memory, onnx_models, peak, reference, report, runners, suite,
               timing)
from .backward import (BACKWARD_METHODS, backward_needs, backward_runners,
                       format_backward_markdown, run_backward_suite, transposed_layer)
from .cases import (FOREIGN_SEGMENTS, QUIESCE_SECONDS, add_timing, foreign_pool, machine_info,
                    new_result, prepare_case, run_case, run_group, run_suite)
from .memory import (WORKSPACE_NOISE_BYTES, fastconv_workspace, reported_workspace_bytes,
                     traced_peak_bytes)
from .onnx_models import ONNX_SEGMENTS, bench_onnx_model, onnx_model_inputs
from .peak import (STALL_FRACTION, STALL_PROBE_ITERS, STALL_RETRIES, STALL_WAIT_SECONDS,
                   UNMEASURED, machine_probe, measured_peak_gflops, peak_gflops)
from .reference import (CHECK_RTOL, Check, check_output, reference_activation,
                        reference_conv2d, reference_output)
from .report import (RAW_TARGET, WINOGRAD_TARGET, _ratio, _speedup, failures, format_markdown,
                     format_peak, format_table, machine_summary, table_rows, target_summary,
                     write_chart, write_json)
from .runners import (NotApplicable, Unavailable, can_pack, fastconv_runner,
                      fastconv_thread_control, fastconv_threads, make_runner, onnx_conv_model,
                      onnxruntime_runner, peer_available, torch_runner, winograd_applies)
from .suite import (ACTIVATIONS, CALL_METHOD, IMPL_LABELS, IMPLS, LAYER_BY_ID, LAYERS, METHODS,
                    PEER_SHORT, PEERS, QUICK_LAYERS, SUPPORTED_ACTIVATIONS, Case, Layer,
                    all_threads, conv_flops, make_inputs, select_layers, thread_counts)
from .timing import Timing, _interleaved_samples, time_fn, time_interleaved
