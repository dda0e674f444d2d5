#!/usr/bin/env bash
# Prepare this machine to run molecule scenarios: podman with systemd containers acting as VMs; and the
# browser the fleet page tests drive (Debian's chromium, headless).
# Idempotent: installs missing Debian packages, writes the containers.conf that works on these hosts
# (runc + cgroupfs, lowered ulimits), and builds the base image localhost/otelstack-debian:12 once.
# It also installs Debian's PostgreSQL server: the OpAMP replica tests start throwaway clusters of their
# own with its initdb/pg_ctl (tests/opamp/pgcluster.py); the system service is not needed and is stopped.
set -euo pipefail

IMAGE="${OTELSTACK_LAB_IMAGE:-localhost/otelstack-debian:12}"
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

if podman image exists "$IMAGE"; then
  echo "lab: image $IMAGE present"
  exit 0
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
rootfs=$(mktemp -d /var/tmp/otelstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "lab: debootstrap bookworm from $mirror (about a minute)"
# A bare host: what the roles need beyond this (python3-cryptography for the pki role, nftables,
# chrony, python3-venv) they install themselves, so the scenarios prove that they do.
packages=systemd,systemd-sysv,python3,python3-yaml,iproute2,ca-certificates,procps,openssl,sudo
if ! debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || ! chroot "$rootfs" python3 -c 'import yaml'; then
  tail -n 40 "$rootfs.log" >&2
  [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
  echo "lab: debootstrap of bookworm failed (log above)" >&2
  exit 1
fi

tar -C "$rootfs" -c . | podman import - "$IMAGE" >/dev/null
echo "lab: built $IMAGE"
