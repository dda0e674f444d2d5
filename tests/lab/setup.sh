#!/usr/bin/env bash
# Prepare this machine to run molecule scenarios: podman with systemd containers acting as VMs; and the
# browser the fleet page tests drive (Debian's chromium, headless).
# Idempotent: installs missing Debian packages, writes the containers.conf that works on these hosts
# (runc + cgroupfs, lowered ulimits), and builds the base images localhost/otelstack-debian:RELEASE once
# each -- 12 (bookworm) and 13 (trixie), the releases the roles support -- by debootstrap from the mirror.
# OTELSTACK_LAB_RELEASES narrows the images built (for example "12"); an image that exists is kept.
# It also installs Debian's PostgreSQL server: the OpAMP replica tests start throwaway clusters of their
# own with its initdb/pg_ctl (tests/opamp/pgcluster.py); the system service is not needed and is stopped.
set -euo pipefail

REPOSITORY=localhost/otelstack-debian
# Debian release number -> suite name (debootstrap has a script per suite).
declare -A SUITES=([12]=bookworm [13]=trixie)
read -r -a RELEASES <<<"${OTELSTACK_LAB_RELEASES:-12 13}"
need=()
for pkg in podman runc debootstrap nftables chromium postgresql; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "lab: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [[ " ${need[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
fi

conf=/etc/containers/containers.conf
if ! grep -q 'otelstack lab' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat >"$conf" <<'CONF'
# otelstack lab: crun cannot run here (cgroups in hybrid mode), and default rlimits are too high.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
if [[ -z "$mirror" ]]; then
  echo "lab: no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
  exit 1
fi
# A bare host: what the roles need beyond this (python3-cryptography for the pki role, nftables,
# chrony, python3-venv) they install themselves, so the scenarios prove that they do.
packages=systemd,systemd-sysv,python3,python3-yaml,iproute2,ca-certificates,procps,openssl,sudo

rootfs=
trap 'if [[ -n "$rootfs" ]]; then rm -rf "$rootfs" "$rootfs.log"; fi' EXIT

# build_image RELEASE: localhost/otelstack-debian:RELEASE from a minbase debootstrap of its suite, unless
# the image exists. Prints what it does; on failure, the end of debootstrap's log and the suite that failed.
build_image() {
  local release=$1 suite=${SUITES[$1]:-} image="$REPOSITORY:$1" t0
  if [[ -z "$suite" ]]; then
    echo "lab: no Debian suite known for release '$release' (known: ${!SUITES[*]})" >&2
    return 1
  fi
  if podman image exists "$image"; then
    echo "lab: image $image present"
    return 0
  fi
  if [[ ! -f "/usr/share/debootstrap/scripts/$suite" ]]; then
    echo "lab: this debootstrap has no script for $suite (Debian $release): upgrade the debootstrap package" >&2
    return 1
  fi
  t0=$(date +%s)
  rootfs=$(mktemp -d "/var/tmp/otelstack-rootfs-$suite.XXXXXX")
  echo "lab: debootstrap $suite (Debian $release) from $mirror (about a minute)"
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || ! chroot "$rootfs" python3 -c 'import yaml'; then
    tail -n 40 "$rootfs.log" >&2
    [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
    echo "lab: debootstrap of $suite (Debian $release) failed (log above); $image not built" >&2
    return 1
  fi
  echo "lab: importing $image"
  if ! tar -C "$rootfs" -c . | podman import - "$image" >/dev/null; then
    echo "lab: podman import of $image failed" >&2
    return 1
  fi
  rm -rf "$rootfs" "$rootfs.log"
  rootfs=
  echo "lab: built $image in $(($(date +%s) - t0))s"
}

for release in "${RELEASES[@]}"; do
  build_image "$release"
done
