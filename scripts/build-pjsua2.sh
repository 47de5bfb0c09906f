#!/usr/bin/env bash
# Builds pjsua2 (Python binding, SWIG -threads) from the pjproject tree that Debian's `ring`
# source package carries, with hotline's config_site.h (1,024 calls per process instead of
# the PyPI wheels' 4). The result is cached per machine under $HOTLINE_CACHE (default
# ~/.cache/hotline), keyed by this script, config_site.h and the Python version, so it is
# built once; then it is installed into the given venv (a .pth file pointing at the cache).
#
# usage: build-pjsua2.sh VENV_PYTHON
set -euo pipefail

PY=${1:?usage: build-pjsua2.sh VENV_PYTHON}
# Absolute (the build cds into the source tree), without resolving the venv's symlink: the
# venv's python, not the interpreter it points at, knows the venv's site-packages.
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT=${HOTLINE_CACHE:-$HOME/.cache/hotline}
RING_VERSION=20230206.0~ds2-1.1+deb12u1
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
KEY=$( { cat "$0" "$HERE"/pjsua2/*; echo "$PYVER"; } | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/pjsua2-$KEY"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

install_pth() {
  echo "$OUT" > "$SITE/hotline-pjsua2.pth"
}

if [ -f "$OUT/_pjsua2.so" ] && [ -f "$OUT/pjsua2.py" ]; then
  install_pth
  echo "build-pjsua2: cached build $OUT"
  exit 0
fi

echo "build-pjsua2: building into $OUT (about 3 minutes on 2 cores)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotline-pjsua2.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 1. The source package, through a temporary apt configuration with deb-src entries derived from
#    the system's own sources (the system's apt state is left alone).
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/sources.list.d"
: > "$WORK/apt/sources.list"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$WORK/apt/sources.list.d/src.sources"
fi
if [ -f /etc/apt/sources.list ]; then
  sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list > "$WORK/apt/sources.list"
fi
APT=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=$WORK/apt/sources.list.d"
     -o "Dir::State::Lists=$WORK/apt/lists" -o "APT::Sandbox::User=root")
apt-get "${APT[@]}" update -qq
(cd "$WORK" && apt-get "${APT[@]}" source --download-only -qq "ring=$RING_VERSION" >/dev/null)
# dpkg-source applies Debian's patches, among them the CVE-2023-27585 fix to pjlib-util's DNS code.
(cd "$WORK" && dpkg-source -x ring_*.dsc ring >/dev/null)
SRC=$(ls -d "$WORK"/ring/daemon/contrib/tarballs-unpacked/pjproject-*/pjproject-* | head -n1)
[ -d "$SRC/pjsip-apps/src/swig" ] || { echo "build-pjsua2: no pjproject tree in ring" >&2; exit 1; }

# 2. pjproject with our limits, static libraries with -fPIC.
cp "$HERE/pjsua2/config_site.h" "$SRC/pjlib/include/pj/config_site.h"
for p in "$HERE"/pjsua2/*.patch; do
  [ -e "$p" ] || continue
  (cd "$SRC" && patch -p1 -s < "$p")
done
cd "$SRC"
CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC" ./configure -q \
  --enable-epoll --disable-sound --disable-video --disable-opus --disable-ssl \
  --disable-speex-codec --disable-speex-aec --disable-gsm-codec --disable-ilbc-codec \
  --disable-g7221-codec --disable-l16-codec --disable-sdl --disable-ffmpeg --disable-v4l2 \
  --disable-openh264 --disable-vpx --disable-libyuv --disable-libwebrtc --disable-opencore-amr \
  --disable-silk --disable-bcg729 --disable-android-mediacodec >/dev/null
make -s dep >/dev/null 2>&1
make -s -j"$(nproc)" >/dev/null 2>&1

# 3. The SWIG binding, run by hand with -threads (the tree's swig Makefile wants a JDK).
cd "$SRC/pjsip-apps/src/swig/python"
swig -python -c++ -threads -w312 -DSWIG_NO_EXPORT_ITERATOR_METHODS \
  -I../../../../pjlib/include -I../../../../pjlib-util/include -I../../../../pjmedia/include \
  -I../../../../pjsip/include -I../../../../pjnath/include \
  -outdir . -o pjsua2_wrap.cpp ../pjsua2.i
CXXFLAGS=$(make --no-print-directory -f helper.mak cflags | tr '\n' ' ')
LDFLAGS=$(make --no-print-directory -f helper.mak ldflags | tr '\n' ' ')
LIBS=$(make --no-print-directory -f helper.mak libs | sed 's/^/-l/' | tr '\n' ' ')
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# shellcheck disable=SC2086
g++ -shared -fPIC -O2 -I"$PYINC" $CXXFLAGS pjsua2_wrap.cpp -o _pjsua2.so $LDFLAGS $LIBS

mkdir -p "$OUT.tmp"
cp _pjsua2.so pjsua2.py "$OUT.tmp/"
cp "$HERE/pjsua2/config_site.h" "$OUT.tmp/"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
install_pth
echo "build-pjsua2: built $OUT"
