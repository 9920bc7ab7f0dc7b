"""The layout of src/ (docs/DESIGN.md, "Source tree"): every C file in the
folder of its role, includes that name their folder, and no circle between
files, neither by #include nor by calls (a function one file defines and
another calls): the graph of which file uses which has no cycle."""
import collections
import glob
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
FOLDERS = {"core", "simd", "activation", "conv/direct", "conv/depthwise", "conv/pointwise",
           "conv/first", "conv/small", "conv/winograd", "im2col", "grad", "train", "pool",
           "peak"}
API = {"fastconv.h", "fastconv_grad.h"}   # the C interface, at src/ itself

pytestmark = pytest.mark.skipif(not os.path.isdir(SRC), reason="not a source checkout")


def _sources():
    return sorted(os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "**", "*.[ch]"),
                                                               recursive=True))


def _cycle(graph):
    """One cycle of graph (node -> set of nodes) as a list, or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        state[u] = 2
        stack.pop()
        return None

    for u in sorted(graph):
        if u not in state:
            found = visit(u)
            if found:
                return found
    return None


def test_every_file_in_a_folder_of_its_role():
    for rel in _sources():
        folder = os.path.dirname(rel)
        assert folder in FOLDERS or (folder == "" and rel in API), rel


def test_includes_name_existing_files_and_form_no_circle():
    graph = collections.defaultdict(set)
    for rel in _sources():
        text = open(os.path.join(SRC, rel)).read()
        for inc in re.findall(r'#include\s+"([^"]+)"', text):
            assert os.path.isfile(os.path.join(SRC, inc)), f"{rel} includes {inc}: not src/{inc}"
            graph[rel].add(inc)
    assert _cycle(graph) is None, _cycle(graph)


def _graph_with_cycle():
    return {"a.c": {"b.c"}, "b.c": {"c.c"}, "c.c": {"a.c"}, "d.c": {"a.c"}}


def test_cycle_finder_finds_one():
    assert _cycle(_graph_with_cycle()) == ["a.c", "b.c", "c.c", "a.c"]
    assert _cycle({"a.c": {"b.c"}, "b.c": set()}) is None


def test_no_call_circle_between_files():
    """From the symbols of the build's object files (build/temp*, left by
    `setup.py build_ext --inplace`): file A uses file B when A calls or reads
    something B defines."""
    objs = glob.glob(os.path.join(ROOT, "build", "temp*", "src", "**", "*.o"), recursive=True)
    if not objs or not shutil.which("nm"):
        pytest.skip("no object files of an in-place build here (or no nm)")
    defs, undef = {}, {}
    for o in objs:
        name = o.split(os.sep + "src" + os.sep, 1)[1][:-2]
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        defs[name] = {p[2] for p in (l.split() for l in out.splitlines())
                      if len(p) == 3 and p[1] in "TDRB"}
        undef[name] = {p[1] for p in (l.split() for l in out.splitlines())
                       if len(p) == 2 and p[0] == "U"}
    where = {s: f for f, ss in defs.items() for s in ss}
    graph = {f: {where[s] for s in us if s in where and where[s] != f} for f, us in undef.items()}
    assert _cycle(graph) is None, _cycle(graph)
