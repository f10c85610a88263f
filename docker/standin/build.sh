#!/usr/bin/env bash
# Builds local stand-ins for the base images docker/Dockerfile and docker/compose.yaml
# name (debian:bookworm-slim, rust:1-bookworm, postgres:16) on a machine whose Docker
# engine cannot pull them. An image that already exists and is not a stand-in (pulled from
# a registry) is never replaced; one that can be pulled is pulled instead of built.
#
# Idempotent: each stand-in carries a label with the hash of its inputs (this directory,
# the Rust toolchain, the CA roots) and is rebuilt only when that hash changes. Work files
# live in target/standin/ (the debootstrap root file system is kept there and reused).
#
#   docker/standin/build.sh            # build what is missing, print the images
#   STANDIN_FORCE=1 docker/standin/build.sh   # rebuild the stand-ins
#
# Needs root (debootstrap), docker, debootstrap (installed with apt-get when missing),
# rustup's active toolchain, and Debian's archive (deb.debian.org) over HTTP.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/target/standin"
mirror="${STANDIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
label=org.wakeplane.standin.hash
mkdir -p "$work"

log() { echo "standin: $*" >&2; }

toolchain_dir="$(dirname "$(dirname "$(rustup which cargo)")")"
toolchain="$(basename "$toolchain_dir")"
rust_version="$("$toolchain_dir/bin/rustc" --version)"
extra_ca=(/usr/local/share/ca-certificates/*.crt)
[ -e "${extra_ca[0]}" ] || extra_ca=()

# The inputs every stand-in depends on, then each one's own.
base_hash="$(cat "$here/build.sh" | sha256sum | cut -c1-16)"
hash_of() { { echo "$base_hash"; cat "$@"; } | sha256sum | cut -c1-16; }
slim_hash="$base_hash"
rust_hash="$(hash_of "$here/rust.Dockerfile" <(echo "$toolchain $rust_version") ${extra_ca[@]+"${extra_ca[@]}"})"
pg_hash="$(hash_of "$here/postgres.Dockerfile" "$here/postgres-entrypoint.sh")"

# 0: up to date, 1: build it, 2: a real image is there or could be pulled (leave it).
need() {
  local image="$1" hash="$2" have
  if have="$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null)"; then
    if [ -z "$have" ] || [ "$have" = '<no value>' ]; then
      log "$image: a real image is present, kept"; return 2
    fi
    if [ "$have" = "$hash" ] && [ -z "${STANDIN_FORCE:-}" ]; then
      log "$image: stand-in up to date ($hash)"; return 0
    fi
    log "$image: stand-in out of date ($have, now $hash)"; return 1
  fi
  if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
    log "$image: pulled"; return 2
  fi
  log "$image: cannot be pulled, building a stand-in"; return 1
}

build_slim() {
  local rootfs="$work/rootfs"
  if [ ! -e "$work/rootfs.done" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    rm -rf "$rootfs"
    log "debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    touch "$work/rootfs.done"
  fi
  # What debian:bookworm-slim trims: documentation, manuals, locales, package caches;
  # dpkg is told to keep skipping them for packages installed later.
  local slim="$work/rootfs-slim"
  rm -rf "$slim" && cp -a "$rootfs" "$slim"
  mkdir -p "$slim/etc/dpkg/dpkg.cfg.d" "$slim/etc/apt/apt.conf.d"
  cat >"$slim/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
  cat >"$slim/etc/apt/apt.conf.d/docker-clean" <<'CFG'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CFG
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$mirror" "$mirror" >"$slim/etc/apt/sources.list"
  find "$slim/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$slim"/usr/share/{man,info,locale,groff,lintian}/* \
    "$slim"/var/lib/apt/lists/* "$slim"/var/cache/apt/* "$slim"/var/cache/debconf/*-old \
    "$slim"/var/log/*.log "$slim"/var/log/apt/* "$slim"/tmp/* "$slim"/dev/*
  tar --numeric-owner -C "$slim" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' \
    -c "LABEL $label=$slim_hash" \
    - debian:bookworm-slim >/dev/null
  rm -rf "$slim"
}

build_rust() {
  local ctx="$work/rust-context"
  rm -rf "$ctx" && mkdir -p "$ctx/ca"
  # The toolchain without its HTML documentation (0.8 GB nothing here reads).
  tar -C "$toolchain_dir" --exclude=./share/doc -c . | (mkdir -p "$ctx/toolchain" && tar -C "$ctx/toolchain" -x)
  for c in ${extra_ca[@]+"${extra_ca[@]}"}; do cp "$c" "$ctx/ca/"; done
  docker build -q -f "$here/rust.Dockerfile" --build-arg TOOLCHAIN="$toolchain" \
    --label "$label=$rust_hash" -t rust:1-bookworm "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_postgres() {
  docker build -q -f "$here/postgres.Dockerfile" --label "$label=$pg_hash" \
    -t postgres:16 "$here" >/dev/null
}

set +e
need debian:bookworm-slim "$slim_hash"; slim=$?
set -e
if [ "$slim" = 1 ]; then
  build_slim
  # The others are built on top of it.
  STANDIN_FORCE=1
fi
set +e
need rust:1-bookworm "$rust_hash"; r=$?
need postgres:16 "$pg_hash"; p=$?
set -e
if [ "$r" = 1 ]; then log "building rust:1-bookworm ($rust_version)"; build_rust; fi
if [ "$p" = 1 ]; then log "building postgres:16 (PostgreSQL 15 from bookworm)"; build_postgres; fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E '^(debian:bookworm-slim|rust:1-bookworm|postgres:16) ' >&2 || true
