#!/usr/bin/env bash
# Builds the cpu image and checks, inside it, what KFP, Dataflow and a person at a terminal will do with it.
#   infra/smoke_test_image.sh          (make image-test)
# Environment: CONTAINER_TOOL=docker|podman|buildah (default: the first that works here); DOCKERFILE (default
#   infra/docker/Dockerfile: another one, e.g. an older revision's, to see which steps it fails);
#   SMOKE_WORK (default /var/tmp/sound-event-classifiers-smoke): stand-in bases and the folder shared with
#   the containers; DEBIAN_MIRROR for the stand-in bases.
#
# Steps, each PASS or FAIL (the script exits 1 if any failed):
#   runtime checks (infra/smoke/image_checks.py) as uid 1000 and as an arbitrary uid in group 0 (OpenShift):
#     imports; no test tools, no second copy of the sources, no build leftovers; HOME, pip's .local/.cache,
#     matplotlib's config, /minio /s3 /gcs and run_local.py's default root writable; TensorFlow prints no
#     oneDNN/absl/CUDA lines
#   compile.py inside the image; then one compiled component (ingest-dataset of fsd50k_baseline) run with its
#     exact command and args, output URI under minio:// (written below /minio), as both users
#   `run IMAGE python ...` runs python; `run IMAGE --help` reaches Beam's boot binary (Dataflow's way)
#   run_local.py fsd50k_baseline with tiny settings and its default pipeline root
#   the image size
# Where no registry can be reached (and the bases are not already here), the two base images are replaced by
# stand-ins built from Debian packages (debootstrap): the script says so loudly, and the size is then the
# stand-in's. Needs root for debootstrap and buildah; on Debian: apt-get install buildah debootstrap
# fuse-overlayfs uidmap.
set -euo pipefail
cd "$(dirname "$0")/.."
image=localhost/sound-event-classifiers-cpu:smoke
work="${SMOKE_WORK:-/var/tmp/sound-event-classifiers-smoke}"
dockerfile="${DOCKERFILE:-infra/docker/Dockerfile}"
arbitrary_user=1000650000:0
stand_in_label=org.sound-event-classifiers.stand-in

pick_tool() {
  local tool
  for tool in ${CONTAINER_TOOL:-docker podman buildah}; do
    case $tool in
      buildah) command -v buildah >/dev/null && { echo buildah; return; } ;;
      *) command -v "$tool" >/dev/null && "$tool" info >/dev/null 2>&1 && { echo "$tool"; return; } ;;
    esac
  done
  echo "no working container tool (${CONTAINER_TOOL:-docker, podman or buildah}); on Debian, as root:" \
    "apt-get install buildah debootstrap fuse-overlayfs uidmap" >&2
  exit 1
}
tool=$(pick_tool)

has_image() {
  case $tool in
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
    *) "$tool" image inspect "$1" >/dev/null 2>&1 ;;
  esac
}

label_of() {
  case $tool in
    buildah) buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" ;;
    *) "$tool" image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" ;;
  esac
}

build() {  # build CONTEXT TAG [options...]
  local context=$1 tag=$2
  shift 2
  case $tool in
    buildah) buildah bud --isolation chroot --pull-never --layers -t "$tag" "$@" "$context" ;;
    *) "$tool" build -t "$tag" "$@" "$context" ;;
  esac
}

# A Debian bookworm root with Python 3.11 in a venv at /usr/local, where python:3.11-slim keeps it.
build_python_stand_in() {
  local tag=$1 rootfs="$work/python-rootfs" context="$work/python-base"
  if [ ! -x "$rootfs/usr/local/bin/pip" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
      "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    chroot "$rootfs" python3 -m venv /usr/local
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  fi
  # pip in the build must pass whatever TLS proxy this machine passes: trust this machine's CAs as well.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/build-host-ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/build-host-ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
  fi
  mkdir -p "$context"
  tar -C "$rootfs" -cf "$context/rootfs.tar" .
  cat > "$context/Dockerfile" <<EOF
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
LABEL $stand_in_label="Debian bookworm (debootstrap) with its Python 3.11 in a venv at /usr/local, for $tag"
CMD ["python3"]
EOF
  build "$context" "$tag"
}

# A shell script where Beam's boot binary lies: answers --help as the binary does, fails otherwise (as the
# binary does when no runner started it), and says it is a stand-in.
build_beam_stand_in() {
  local tag=$1 context="$work/beam-base"
  mkdir -p "$context"
  cat > "$context/boot" <<'EOF'
#!/bin/sh
echo "Beam boot stand-in called with: $*"
case " $* " in
  *" --help "* | *" -h "*) echo "Usage of /opt/apache/beam/boot: (stand-in for Beam's SDK boot binary)" ;;
  *) echo "no provision endpoint: a worker needs a runner to start it" >&2; exit 1 ;;
esac
EOF
  chmod 755 "$context/boot"
  printf 'FROM scratch\nCOPY boot /opt/apache/beam/boot\nLABEL %s="%s"\n' "$stand_in_label" \
    "a shell script in place of the boot binary of $tag" > "$context/Dockerfile"
  build "$context" "$tag"
}

stand_ins=()
ensure_base() {  # ensure_base IMAGE BUILDER
  if ! has_image "$1" && ! timeout 300 "$tool" pull "$1" >/dev/null 2>&1; then
    echo "no registry answered for $1: building a stand-in"
    "$2" "$1"
  fi
  local label
  label=$(label_of "$1" "$stand_in_label")
  if [ -n "$label" ] && [ "$label" != "<no value>" ]; then stand_ins+=("$1: $label"); fi
}

announce_stand_ins() {
  [ ${#stand_ins[@]} -eq 0 ] && return
  echo "##########################################################################################"
  echo "# STAND-IN BASE IMAGES: no registry was reachable, so the image was built on stand-ins:"
  printf '#   %s\n' "${stand_ins[@]}"
  echo "# The steps check this project's layers; the real bases' contents and size were not tested."
  echo "##########################################################################################"
}

run_in_image() {  # run_in_image USER entrypoint|command ARGS...: as `docker run`, or with KFP's command override
  local user=$1 mode=$2
  shift 2
  case $tool in
    buildah)
      local container status=0 entrypoint=()
      container=$(buildah from --pull-never "$image")
      if [ "$mode" = entrypoint ]; then
        mapfile -t entrypoint < <(buildah inspect --type image \
          --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image")
      fi
      buildah run --isolation chroot --user "$user" -v "$work/share:/smoke" "$container" -- \
        "${entrypoint[@]}" "$@" || status=$?
      buildah rm "$container" >/dev/null
      return $status
      ;;
    *)
      if [ "$mode" = command ]; then
        "$tool" run --rm --user "$user" -v "$work/share:/smoke" --entrypoint "$1" "$image" "${@:2}"
      else
        "$tool" run --rm --user "$user" -v "$work/share:/smoke" "$image" "$@"
      fi
      ;;
  esac
}

results=()
failed=0
step() {  # step NAME COMMAND...
  local name=$1
  shift
  echo
  echo "== $name"
  if "$@"; then results+=("PASS $name"); else results+=("FAIL $name"); failed=$((failed + 1)); fi
  echo "${results[-1]}"
}

output_has() {  # output_has any|success TEXT COMMAND...: the command's output holds TEXT (and it succeeded)
  local wanted=$1 text=$2 output status=0
  shift 2
  output=$("$@" 2>&1) || status=$?
  printf '%s\n' "$output" | tail -n 5
  grep -qF -- "$text" <<<"$output" && { [ "$wanted" = any ] || [ $status -eq 0 ]; }
}

run_component() {  # run_component USER: fsd50k_baseline's ingest-dataset with its compiled command
  run_in_image "$1" command python /smoke/run_compiled_task.py /smoke/compiled/fsd50k_baseline.yaml \
    ingest-dataset "minio://mlpipeline/smoke-${1%%:*}" 'dataset_root=""' 'dataset_format="fsd50k"' \
    synthetic_clips=60 seed=0 'beam_runner="DirectRunner"' 'beam_options=[]'
}

image_size() {
  case $tool in
    buildah) buildah images --format '{{.Size}}' "$image" ;;
    *) "$tool" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.2f GB\n", $1 / 1e9}' ;;
  esac
}

echo "container tool: $tool"
mkdir -p "$work"
python_base=docker.io/library/$(sed -n 's/^FROM \(python:[^ ]*\) AS .*/\1/p' "$dockerfile" | head -n 1)
beam_base=docker.io/$(sed -n 's/^FROM \([^ ]*beam[^ ]*\) AS beam_sdk$/\1/p' "$dockerfile")
ensure_base "$python_base" build_python_stand_in
ensure_base "$beam_base" build_beam_stand_in
announce_stand_ins

started=$(date +%s)
build . "$image" --target cpu -f "$dockerfile"
echo "built $image in $(($(date +%s) - started)) s"

rm -rf "$work/share"
mkdir -p "$work/share"
cp infra/smoke/*.py "$work/share/"
chmod -R a+rwX "$work/share"

step "runtime checks as uid 1000" run_in_image 1000 command python /smoke/image_checks.py
step "runtime checks as uid ${arbitrary_user%%:*} in group 0" \
  run_in_image "$arbitrary_user" command python /smoke/image_checks.py
step "compile.py inside the image" run_in_image 1000 command python pipelines/compile.py \
  --output-dir /smoke/compiled --image "$image"
step "compiled ingest-dataset, output under minio://, as uid 1000" run_component 1000
step "compiled ingest-dataset, output under minio://, as uid ${arbitrary_user%%:*} in group 0" \
  run_component "$arbitrary_user"
step "run IMAGE python ... runs python" output_has success "python ran: 42" \
  run_in_image 1000 entrypoint python -c 'print("python ran:", 6 * 7)'
step "run IMAGE --help reaches Beam's boot binary" output_has any "Usage of /opt/apache/beam/boot:" \
  run_in_image 1000 entrypoint --help
step "run_local.py fsd50k_baseline, default pipeline root" \
  output_has success "[run_local] fsd50k_baseline finished in" run_in_image 1000 entrypoint \
  python pipelines/run_local.py fsd50k_baseline --param synthetic_clips=60 --param width=0.125 --param epochs=1

echo
echo "== summary ($tool, $dockerfile)"
printf '%s\n' "${results[@]}"
echo "image $image: $(image_size)"
announce_stand_ins
if [ $failed -gt 0 ]; then
  echo "$failed of ${#results[@]} image checks FAILED"
  exit 1
fi
echo "all ${#results[@]} image checks passed"
