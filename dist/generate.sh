#!/bin/sh
# Man pages and shell completions for the four binaries, made from their
# clap definitions (each binary's hidden `--generate-to DIR`):
#
#   dist/generate.sh OUTDIR [BINDIR]
#
# runs sc-ca, sc-server, sc-client and sc-proxy from BINDIR (default: the
# ones on PATH, e.g. after `cargo install --path .`) and writes
#
#   OUTDIR/man/man1/sc-ca.1 sc-ca-init.1 ... sc-server.1 sc-client.1 sc-proxy.1
#   OUTDIR/completions/bash/sc-server      (and sc-ca, sc-client, sc-proxy)
#   OUTDIR/completions/zsh/_sc-server
#   OUTDIR/completions/fish/sc-server.fish
#
# Where they go: README.md, "Install". Nothing here is checked in; the
# files are made from the binaries that will be installed beside them.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUTDIR [BINDIR]" >&2
    exit 2
fi
out=$1
bindir=${2:-}

for bin in sc-ca sc-server sc-client sc-proxy; do
    if [ -n "$bindir" ]; then
        exe=$bindir/$bin
    else
        exe=$(command -v "$bin") || {
            echo "error: $bin is not on PATH" >&2
            echo "hint: install the binaries first (cargo install --path .), or name their directory: $0 OUTDIR target/release" >&2
            exit 1
        }
    fi
    "$exe" --generate-to "$out" >/dev/null
done
echo "wrote $(find "$out/man" "$out/completions" -type f | wc -l) files under $out (man/man1, completions/{bash,zsh,fish})"
