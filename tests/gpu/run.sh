#!/bin/bash
# run.sh — the one device script of issue 20 (points 1 and 4): on a machine with an NVIDIA GPU
# and no compiler, runs the GPU checks and benchmarks prepared by tests/gpu/prepare.sh and
# writes every number to $OUT (logs, bench.jsonl, torch.jsonl, summary.json).  Builds nothing.
#
#   tests/gpu/run.sh [KIT]        KIT: build/gpu-kit (default); OUT: ./gpu-out when unset
#
# Exit status: 0 every check agreed, 1 a mismatch or failure, 3 no GPU (nvidia-smi missing or
# failing, or the driver finds no device), 4 no kit.  About 6-8 minutes on an H200.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
kit=${1:-$root/build/gpu-kit}
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1; then
  note "no GPU: nvidia-smi is missing or fails; nothing run"
  exit 3
fi
note "gpu: $(head -1 "$out/nvidia-smi.txt")"
if [ ! -x "$kit/gpu_check" ] || [ ! -f "$kit/kit.tar.xz" ]; then
  note "no kit at $kit: run tests/gpu/prepare.sh where LLVM is, and carry build/gpu-kit"
  exit 4
fi
export LD_LIBRARY_PATH="$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work=$(mktemp -d)
tar -C "$work" -xJf "$kit/kit.tar.xz"
"$kit/gpu_check" --probe 2>>"$summary" || { note "no GPU: the CUDA driver finds no device"; exit 3; }
status=0

# 1. GPU against CPU executor (1e-5), micro-batched, and run to run bit-identical
for set in std examples random; do
  n=4; [ "$set" = random ] && n=2
  timeout 240 "$kit/gpu_check" --batches "$n" "$work"/art/"$set"/*.so >"$out/check_$set.log" 2>&1
  rc=$?
  note "check_$set: exit $rc: $(tail -1 "$out/check_$set.log")"
  [ $rc -eq 0 ] || status=1
done

# 2. bench: the GPU step at 16M and 256M tokens, with the device copy bandwidth of the same bytes
: >"$out/bench.jsonl"
for obj in std/grpo std/rec_oneside_nois examples/gspo; do
  timeout 150 "$kit/gpu_check" --bench --tokens 16777216 --tokens 268435456 --repeat 5 "$work/art/$obj.so" \
    >>"$out/bench.jsonl" 2>>"$out/bench.err" || { note "bench $obj: exit $?"; status=1; }
done
note "bench: $(wc -l <"$out/bench.jsonl") measurements in bench.jsonl"

# 3. PyTorch eager and torch.compile of the same losses on the same GPU
: >"$out/torch.jsonl"
py=$(command -v python3 || true)
if [ -z "$py" ] || ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$out/torch.err"; then
  note "torch: MISSING (no python3 with a CUDA torch); eager and compile baselines not run"
else
  for obj in grpo rec_oneside_nois gspo; do
    for tok in 16777216 268435456; do
      for mode in "" --compile; do
        timeout 120 "$py" "$root/bench/torch_eager.py" --objective "$obj" --tokens "$tok" --device cuda \
          --repeat 5 --warmup 2 $mode >>"$out/torch.jsonl" 2>>"$out/torch.err" ||
          note "torch $obj $tok ${mode:-eager}: exit $?"
      done
    done
  done
  note "torch: $(wc -l <"$out/torch.jsonl") measurements in torch.jsonl"
fi
rm -rf "$work"
note "status: $status"
exit $status
