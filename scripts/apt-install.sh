#!/usr/bin/env bash
# Install Debian packages non-interactively: `scripts/apt-install.sh PACKAGE...`.
# Another apt/dpkg run may be under way on the machine; rather than failing on its lock, wait for it.
set -euo pipefail
(($#)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "apt-install: run as root to install $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

# apt-get waits for the dpkg lock by itself (DPkg::Lock::Timeout), but not for the package-list and
# archive-cache locks, so retry while the failure is a lock held by someone else -- up to 15 minutes.
apt() {
    local out deadline=$((SECONDS + 900))
    until out=$(apt-get -qq -o DPkg::Lock::Timeout=300 "$@" 2>&1); do
        if ! grep -qiE 'could not (get|open) lock|unable to (acquire|lock)' <<<"$out" || ((SECONDS > deadline)); then
            echo "$out" >&2
            return 1
        fi
        echo "apt-install: apt is busy (another install is running); waiting" >&2
        sleep 5
    done
}

echo "apt-install: installing $*" >&2
apt update
apt -y --no-upgrade install "$@" # only ever called for missing packages; upgrade nothing
