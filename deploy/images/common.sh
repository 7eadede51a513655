# Shared by deploy/images/build-*: messages, the "image present" check, and a Debian
# root filesystem made with debootstrap and imported with `docker import` (no registry).
# shellcheck shell=bash

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# image_present IMAGE: true when the local engine has IMAGE.
image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# need_debootstrap: installs Debian's debootstrap when it is missing.
need_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] && return 0
    say "installing Debian's debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        { as_root apt-get update -qq && as_root apt-get install -y -qq debootstrap >/dev/null; }
}

# debootstrap_import IMAGE PACKAGES [docker import -c CHANGE...] [-- EXTRA_SCRIPT]
# Builds a minbase Debian bookworm root with the comma-separated PACKAGES, runs the
# function named by $rootfs_hook (if set) with the root directory, strips apt's caches
# and imports it as IMAGE.
debootstrap_import() {
    local image=$1 packages=$2
    shift 2
    need_debootstrap
    local mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/drover-rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "as_root rm -rf '$root'" EXIT
    local started=$SECONDS
    say "debootstrap bookworm (minbase${packages:+, $packages}) from $mirror"
    if ! as_root "$(command -v debootstrap || echo /usr/sbin/debootstrap)" --variant=minbase \
        ${packages:+--include="$packages"} bookworm "$root" "$mirror" >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2
        say "debootstrap failed (full log: $root.log): is $mirror reachable? set DEBIAN_MIRROR to use another"
        return 1
    fi
    rm -f "$root.log"
    if [ -n "${rootfs_hook:-}" ]; then "$rootfs_hook" "$root"; fi
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
    local changes=()
    for change in "$@"; do changes+=(-c "$change"); done
    as_root tar -C "$root" -c . | docker import "${changes[@]}" - "$image" >/dev/null
    say "built $image in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}
