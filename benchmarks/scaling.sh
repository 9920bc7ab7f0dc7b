#!/usr/bin/env bash
# Thread scaling of fused / separate / im2col and the peers, on a many-core machine.
#   bash benchmarks/scaling.sh OUTDIR [THREADS]      (LAYERS=a,b,... to choose layers)
# Builds fastconv in place (no network needed when numpy, Cython and setuptools are
# installed), measures the FMA peak, then runs the benchmark at each thread count.
set -euo pipefail
out=${1:?usage: scaling.sh OUTDIR [THREADS]}
threads=${2:-1,2,4,8,$(nproc)}
cd "$(dirname "$0")/.."
mkdir -p "$out"
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|MHz|L2|L3|Flags" | cut -c1-200; } > "$out/machine.txt" || true
python3 setup.py build_ext --inplace -q 2>&1 | grep -vi warning | tail -3 || true
python3 -c "import fastconv; fastconv.show_config()" | tee -a "$out/machine.txt"
if command -v gcc >/dev/null; then
    gcc -O2 -mavx2 -mfma -fopenmp -Isrc benchmarks/peak_fma.c src/peak/peak_avx2.c -o /tmp/peak_fma && /tmp/peak_fma | tee -a "$out/machine.txt"
fi
python3 -m fastconv bench \
    --layers "${LAYERS:-resnet_conv1,resnet_3x3_64,resnet_3x3_256,resnet_3x3_512,vgg_3x3_64_224,resnet_1x1_down,mobilenet_dw,batch8_3x3_128}" \
    --threads "$threads" --activation relu --max-time 0.4 --no-progress \
    --out "$out" --markdown "$out/SCALING.md"
