#!/bin/sh
# Shows a handshake diagram (`sc-client --trace FILE.svg`, or the demo's
# handshake.svg) in a real headless Chromium and checks the screenshot:
#
#   dist/screenshot-trace.sh [FILE.svg [OUT.png]]
#
# Without FILE.svg it runs the demo (`cargo run --example demo`) in the
# current directory (inside the repository) and takes the handshake.svg it
# writes there. OUT.png defaults to FILE.svg with .png. The check: the PNG has the SVG's size,
# is not blank (a share of dark pixels), and something is drawn at both
# lifelines (the arrows reach client and server). Exit 0 when all hold.
#
# Needs chromium (Debian: apt-get install chromium) and python3 (only its
# standard library decodes the PNG). docs/handshake.svg and
# docs/handshake.png, the picture in README.md, are made by
#
#   (cd docs && ../dist/screenshot-trace.sh)
set -eu

chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chromium" ]; then
    echo "error: no chromium on PATH (Debian: apt-get install chromium)" >&2
    exit 1
fi

if [ $# -ge 1 ]; then
    svg=$1
else
    # The demo writes handshake.svg into its working directory: here.
    cargo run --quiet --example demo >/dev/null
    svg=handshake.svg
fi
png=${2:-${svg%.svg}.png}
[ -f "$svg" ] || { echo "error: no such file: $svg" >&2; exit 1; }

abs=$(cd "$(dirname "$svg")" && pwd)/$(basename "$svg")
# The SVG's own size, so the screenshot shows all of it.
width=$(sed -n 's/.*<svg[^>]* width="\([0-9]*\)".*/\1/p' "$svg" | head -n 1)
height=$(sed -n 's/.*<svg[^>]* height="\([0-9]*\)".*/\1/p' "$svg" | head -n 1)
[ -n "$width" ] && [ -n "$height" ] || { echo "error: $svg has no width/height" >&2; exit 1; }

# --no-sandbox: Chromium refuses to run as root without it (containers, CI).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$tmp" --window-size="$width,$height" \
    --screenshot="$png" "file://$abs" >"$tmp/log" 2>&1 || {
    cat "$tmp/log" >&2
    echo "error: chromium failed" >&2
    exit 1
}
[ -s "$png" ] || { cat "$tmp/log" >&2; echo "error: chromium wrote no $png" >&2; exit 1; }

python3 - "$png" "$width" "$height" <<'EOF'
import struct, sys, zlib

path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"error: {path} is not a PNG")
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
w, h, depth, color, _, _, interlace = ihdr
if (w, h) != (want_w, want_h):
    sys.exit(f"error: {path} is {w}x{h}, the SVG {want_w}x{want_h}")
if depth != 8 or color not in (2, 6) or interlace:
    sys.exit(f"error: {path}: unexpected PNG format (depth {depth}, color {color})")
bpp = 3 if color == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, dark, lifelines = bytearray(stride), 0, [0, 0]
client_x, server_x = 170, 790  # bins/sc-client/trace.rs: CLIENT_X, SERVER_X
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 0xFF
        elif f == 2: line[i] = (line[i] + b) & 0xFF
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 0xFF
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    for x in range(w):
        r, g, bl = line[x * bpp:x * bpp + 3]
        if r + g + bl < 3 * 160:
            dark += 1
            for k, lx in enumerate((client_x, server_x)):
                if abs(x - lx) <= 2:
                    lifelines[k] += 1
    prev = line
share = dark / (w * h)
print(f"{path}: {w}x{h}, {share:.1%} dark pixels, client lifeline {lifelines[0]}, server lifeline {lifelines[1]}")
if share < 0.005:
    sys.exit(f"error: {path} is blank")
if min(lifelines) < 50:
    sys.exit(f"error: {path}: nothing drawn at a lifeline")
EOF
echo "ok: $svg shown by $("$chromium" --version 2>/dev/null | head -n 1) in $png"
