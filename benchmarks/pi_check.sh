#!/usr/bin/env bash
# Issue 16: the device half (edge/, bench/) on the Pi's CPU architecture without a Pi. An arm64 Debian
# bookworm rootfs (the base of Raspberry Pi OS Bookworm, Python 3.11) run through qemu-user-static via
# binfmt_misc, with the README's "On the Raspberry Pi" install as written; then the same commands here on
# x86 and a per-model comparison (benchmarks/pi_check_compare.py; exit 1 when a model is beyond tolerance).
#
#   sudo benchmarks/pi_check.sh RUN_DIR [MODEL.tflite|MODEL.onnx ...]      or: sudo make pi-check RUN=runs/demo
#
# Cached: the rootfs under $CCTVKIT_PI_CACHE (default ~/.cache/cctvkit/pi-rootfs; built under a temp name
# and renamed when complete, so a half-built one is never used) and the venv inside it (reinstalled only
# when pyproject.toml changes); a warm run reinstalls only the checkout. Emulation is 30-100x slower than a
# Pi 5: this proves correctness (wheels install, models load, same detections), never speed.
# Environment: OUT (results, default runs/pi-check), PY (x86 python with the edge extra; default
# .venv/bin/python), DATA (../shared/data), LABELS (a YOLO folder; default RUN/scene/holdout), N (labelled
# frames, default 20), FRAMES (speed frames per bench cell, 3), THREADS (1), METADATA (for bare .tflite
# files; default DATA/models/coco-names-metadata.yaml), QEMU_CPU (cortex-a76, the Pi 5's core).
set -euo pipefail

die() { echo "pi-check: $*" >&2; exit 2; }
log() { echo "pi-check: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${1:-${RUN:-}}
[ -n "$RUN" ] || die "usage: $0 RUN_DIR [MODEL.tflite ...] (a run with exported models and manifest.json)"
shift || true
EXTRA=("$@")
RUN=$(cd "$RUN" 2>/dev/null && pwd) || die "run directory not found: $RUN"
[ -f "$RUN/manifest.json" ] || die "no manifest.json in $RUN"
CACHE=${CCTVKIT_PI_CACHE:-$HOME/.cache/cctvkit/pi-rootfs}
OUT=$(mkdir -p "${OUT:-$REPO/runs/pi-check}" && cd "${OUT:-$REPO/runs/pi-check}" && pwd)
PY=${PY:-$REPO/.venv/bin/python}
DATA=$(cd "${DATA:-$REPO/../shared/data}" 2>/dev/null && pwd) || die "no shared data folder (set DATA=)"
LABELS=${LABELS:-$RUN/scene/holdout}
N=${N:-20}
FRAMES=${FRAMES:-3}
THREADS=${THREADS:-1}
METADATA=${METADATA:-$DATA/models/coco-names-metadata.yaml}
export QEMU_CPU=${QEMU_CPU:-cortex-a76}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
VENV=/root/cctvkit-venv   # the README's ~/cctvkit-venv, as root in the chroot
W=/root/pi-check          # the data and models in the rootfs

# --- preconditions: one line each, exit 2 ---------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mounts need it); try: sudo make pi-check"
[ -x "$PY" ] || die "no x86 python at $PY (make setup, or set PY=)"
[ -d "$LABELS/images" ] && [ -d "$LABELS/labels" ] || die "no YOLO images/ + labels/ in $LABELS (set LABELS=)"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap qemu-user-static"
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e $BINFMT/register ]; then
  mount -t binfmt_misc binfmt_misc $BINFMT 2>/dev/null || die "cannot mount binfmt_misc on $BINFMT"
fi
if [ ! -e $BINFMT/qemu-aarch64 ]; then
  CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f $CONF ] || die "no $CONF: apt-get install -y qemu-user-static"
  grep -v '^#' $CONF | head -n1 >$BINFMT/register 2>/dev/null || die "cannot register qemu-aarch64 in binfmt_misc"
fi
grep -q '^enabled' $BINFMT/qemu-aarch64 || die "binfmt_misc handler qemu-aarch64 is disabled"
grep -q '^flags:.*F' $BINFMT/qemu-aarch64 || die "qemu-aarch64 is registered without the F flag (needed in a chroot)"
need_net() {  # $1: what needs it
  python3 - "$MIRROR" <<'EOF' || die "no network to $MIRROR and pypi.org (needed for $1)"
import sys, urllib.request
for url in (sys.argv[1] + "/dists/bookworm/Release", "https://pypi.org/simple/pip/"):
    urllib.request.urlopen(url, timeout=15).close()
EOF
}

mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
flock -n 9 || die "another pi-check is using $CACHE"
T0=$(date +%s)
TIMES="$OUT/times.txt"
: >"$TIMES"
phase() { echo "$1 $(( $(date +%s) - T0 ))s" >>"$TIMES"; log "$1 done at +$(( $(date +%s) - T0 ))s"; }

# --- 1. the rootfs: built under a temp name, renamed when complete ------------------------------------
if [ ! -x "$CACHE/usr/bin/python3" ]; then
  need_net "the rootfs"
  mkdir -p "$(dirname "$CACHE")"
  rm -rf "$CACHE".partial.*          # a build that died half way; never mounted (only $CACHE is)
  TMP=$(mktemp -d "$CACHE.partial.XXXXXX")
  log "debootstrap arm64 bookworm into $TMP (a few minutes)"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,systemd \
    bookworm "$TMP" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
    || die "debootstrap failed, see $OUT/debootstrap.log"
  mv "$TMP" "$CACHE"
  echo "cold" >>"$TIMES"
  phase rootfs
fi
R=$CACHE

# --- mounts for the chroot, always undone ---------------------------------------------------------
MOUNTED=()
cleanup() {
  local i
  for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do
    umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
for m in proc sys dev; do
  mountpoint -q "$R/$m" || { mount --bind "/$m" "$R/$m" || die "cannot bind-mount /$m"; MOUNTED+=("$R/$m"); }
done
# qemu-user 7.2 (bookworm) passes the host's x86 /proc/cpuinfo through; the cpuinfo library in onnxruntime
# finds no ARM core in it and segfaults on import. A Pi 5's /proc/cpuinfo (Cortex-A76, one entry per host CPU,
# as /sys/devices/system/cpu lists them) over it: this patches the emulator's gap, nothing of ours.
CPUINFO="$R/run/pi-check-cpuinfo"
for (( i=0; i<$(nproc --all); i++ )); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i"
done >"$CPUINFO"
printf 'Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0 (emulated: pi_check.sh)\n' >>"$CPUINFO"
mount --bind "$CPUINFO" "$R/proc/cpuinfo" || die "cannot mount over $R/proc/cpuinfo"
MOUNTED+=("$R/proc/cpuinfo")
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
# A host behind a TLS-inspecting proxy trusts an extra CA (PIP_CERT / SSL_CERT_FILE): the chroot's pip must too.
CA_ENV=()
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -n "$HOST_CA" ] && [ -f "$HOST_CA" ]; then
  cp -L "$HOST_CA" "$R/etc/ssl/certs/pi-check-host-ca.pem"
  CA_ENV=(PIP_CERT=/etc/ssl/certs/pi-check-host-ca.pem SSL_CERT_FILE=/etc/ssl/certs/pi-check-host-ca.pem)
fi
CHROOT=$(command -v chroot)  # env -i below drops /usr/sbin from PATH
# A clean environment: no host PIP_* settings, plain PyPI (the host's pip.conf points at an x86 index).
inroot() {
  env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" \
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 "${CA_ENV[@]}" \
    "$CHROOT" "$R" /bin/bash -c "$1"
}
[ "$(inroot 'uname -m')" = aarch64 ] || die "the chroot does not run as aarch64 (binfmt_misc/qemu)"

# --- 2. the checkout (tracked + untracked, not ignored) into the rootfs ------------------------------
rm -rf "$R/root/cctvkit"
mkdir -p "$R/root/cctvkit"
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
  | tar -xf - -C "$R/root/cctvkit"   # --ignore-failed-read: a tracked file deleted in the work tree

# --- 3. the README's install, as written (venv --system-site-packages, pip install '.[edge]') --------
STAMP="$VENV/.pi-check-deps"
DEPS_KEY=$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)
if [ "$(cat "$R$STAMP" 2>/dev/null)" != "$DEPS_KEY" ]; then
  need_net "pip install"
  [ -x "$R$VENV/bin/pip" ] || inroot "python3 -m venv --system-site-packages $VENV"
  inroot "$VENV/bin/pip install '/root/cctvkit[edge]'" >"$OUT/pip.log" 2>&1 \
    || die "pip install '.[edge]' failed in the rootfs, see $OUT/pip.log"
  # setuptools >= 77 in the venv, so a warm run can reinstall the checkout without build isolation.
  inroot "$VENV/bin/pip install 'setuptools>=77'" >>"$OUT/pip.log" 2>&1 || die "setuptools install failed"
  echo "$DEPS_KEY" >"$R$STAMP"
  phase venv
else
  inroot "$VENV/bin/pip install --no-deps --no-build-isolation --force-reinstall /root/cctvkit" \
    >"$OUT/pip.log" 2>&1 || die "reinstalling the checkout failed, see $OUT/pip.log"
  phase reinstall
fi
inroot "$VENV/bin/pip list --format=freeze" >"$OUT/pip-freeze-aarch64.txt"
# The README's apt line: python3-venv is Debian's; python3-picamera2/libcamera come from Raspberry Pi OS only.
inroot "apt-cache policy python3-venv python3-picamera2 python3-libcamera 2>&1; python3 --version; \
  command -v edge || echo 'edge: not on PATH until the venv is activated'" \
  >"$OUT/prereqs-aarch64.txt" 2>&1 || true

# --- 4. data and models into the rootfs: the run (manifest + export/), N labelled frames, bus.jpg -----
rm -rf "$R$W" && mkdir -p "$R$W/run" "$R$W/labels/images" "$R$W/labels/labels" "$R$W/models" "$R$W/bus"
cp "$RUN/manifest.json" "$R$W/run/" && cp -r "$RUN/export" "$R$W/run/"
cp "$DATA/images/bus.jpg" "$R$W/bus/"
mapfile -t LBL < <(find "$LABELS/labels" -name '*.txt' -size +0 | sort)
[ "${#LBL[@]}" -gt 0 ] || die "no non-empty label files in $LABELS/labels"
STEP=$(( ${#LBL[@]} > N ? ${#LBL[@]} / N : 1 ))
for (( i=0; i<${#LBL[@]} && i/STEP<N; i+=STEP )); do
  stem=$(basename "${LBL[$i]}" .txt)
  img=$(find "$LABELS/images" -maxdepth 1 -name "$stem.*" | head -n1)
  [ -n "$img" ] && cp "$img" "$R$W/labels/images/" && cp "${LBL[$i]}" "$R$W/labels/labels/"
done
MODELS_IN=()
for m in "${EXTRA[@]}"; do
  cp "$m" "$R$W/models/" && MODELS_IN+=("$W/models/$(basename "$m")")
done
[ -f "$METADATA" ] && cp "$METADATA" "$R$W/models/metadata.yaml"
# Every ncnn model also runs as a twin with fp16 storage/arithmetic the other way (the choice export made).
(cd "$REPO" && PYTHONPATH="$REPO" "$PY" benchmarks/pi_ncnn_twins.py "$R$W/run/manifest.json" >/dev/null) \
  || die "cannot add the ncnn fp16 twins to $R$W/run/manifest.json"
mapfile -t NAMES < <("$PY" -c 'import json,sys; print(*json.load(open(sys.argv[1]))["models"], sep="\n")' "$R$W/run/manifest.json")
phase data

# --- 5. the same commands on both sides ------------------------------------------------------------
# $1: side (x86|aarch64), $2: its command runner, $3: $R$W as the runner sees it, $4: an output folder as
# the runner sees it, $5: the same folder seen from here. stdout of the runner is captured here.
run_side() {
  local side=$1 runner=$2 w=$3 ow=$4 o=$5 meta="" models="$3/run" m
  rm -rf "$o" && mkdir -p "$o"
  for m in "${MODELS_IN[@]}"; do models+=" $w/models/$(basename "$m")"; done
  [ -f "$R$W/models/metadata.yaml" ] && meta="--metadata $w/models/metadata.yaml"
  $runner "edge backends" >"$o/backends.txt" 2>&1 || log "$side: edge backends failed"
  for m in "${NAMES[@]}"; do
    $runner "edge detect $w/bus/bus.jpg --manifest $w/run --model $m --threads $THREADS" \
      >"$o/detect-$m.jsonl" 2>"$o/detect-$m.err" || log "$side: edge detect $m failed (see $o/detect-$m.err)"
  done
  phase "$side-detect"
  $runner "python -m benchmarks.pi_counts --models $models $meta --images $w/labels/images \
    --threads $THREADS --out $ow/counts.json" 2>"$o/counts.err" || log "$side: pi_counts failed (see $o/counts.err)"
  phase "$side-counts"
  $runner "bench run --models $models $meta --labels $w/labels --label-class 0 --threads $THREADS \
    --frames $FRAMES --max-frames $N --no-plots --no-progress --out $ow/bench" >"$o/bench.log" 2>&1 \
    || log "$side: bench run failed (see $o/bench.log)"
  phase "$side-bench"
}
x86() {  # the checkout's own code with the x86 venv, on the rootfs's copy of the data
  (cd "$REPO" && PATH="$(dirname "$PY"):$PATH" PYTHONPATH="$REPO" bash -c "${1//python -m/$PY -m}")
}
aarch64() { inroot ". $VENV/bin/activate && cd /root/cctvkit && $1"; }  # the README: activate, then edge ...
mkdir -p "$R$W/out"
run_side aarch64 aarch64 "$W" "$W/out" "$OUT/aarch64"
cp -r "$R$W/out/." "$OUT/aarch64/"
run_side x86 x86 "$R$W" "$OUT/x86" "$OUT/x86"

# --- 6. the unit file, verified by the rootfs's own systemd (aarch64 binaries, the venv's paths) -----
mkdir -p "$R/opt/cctvkit" && ln -sfn "$VENV" "$R/opt/cctvkit/venv"   # the unit's ExecStart= path
inroot "systemd-analyze --version | head -n1; cd /root/cctvkit && systemd-analyze verify systemd/cctvkit-edge.service \
  && echo 'systemd-analyze verify: ok'" >"$OUT/systemd-verify.txt" 2>&1 || log "systemd-analyze verify failed"
phase systemd

# --- 7. the comparison ---------------------------------------------------------------------------
rc=0
"$PY" "$REPO/benchmarks/pi_check_compare.py" "$OUT/x86" "$OUT/aarch64" | tee "$OUT/compare.md" || rc=$?
phase total
cat "$TIMES" >&2
exit $rc
