#!/usr/bin/env bash
# Installs what the benchmark runner drives or compares against and finds missing: wrk, Go
# (golang-go) and Node (nodejs), from Debian/Ubuntu packages. Needs root (or run the printed
# apt-get line with sudo). Safe to re-run: installs only what is missing.
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v node >/dev/null 2>&1 || need+=(nodejs)

if [ ${#need[@]} -eq 0 ]; then
    echo "setup.sh: wrk, go and node are all installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: no apt-get here; install ${need[*]} with your package manager" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: not root; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup.sh: installing ${need[*]}"
apt-get update -qq || true
apt-get install -y --no-install-recommends "${need[@]}"
