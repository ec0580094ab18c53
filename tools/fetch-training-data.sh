#!/bin/bash
# fetch-training-data.sh — fetches the photographs, speech and music we train on from Debian packages
# into data/ (git-ignored), with a fixed validation split, and writes the manifest of every file.
#
# Usage: tools/fetch-training-data.sh [--images] [--speech] [--music] [--dest DIR]
#   With no group named, all three are fetched. DIR defaults to data/ at the repository root.
#
# Layout under DIR:
#   debs/                     the downloaded .deb files (kept: re-runs download nothing already there)
#   images|speech|music/{train,val}/PACKAGE_NAME.EXT
#   manifest.d/GROUP/PACKAGE.tsv  one fragment per package (a package already done is skipped)
#   MANIFEST.tsv              all fragments; copied to samples/DATA-MANIFEST.tsv when every package is in
#
# Packages are never installed: `apt-get download` then `dpkg-deb -x` into a scratch folder. Files are
# kept as they are (JPEG, PNG, WAV, Ogg Vorbis/Opus, FLAC, AIFF: all readable by the codec's readers)
# except WebP (to PNG with dwebp) and G.722 (to 16 kHz WAV with ffmpeg). Qt .rcc bundles are unpacked
# by tools/extract-rcc.py, a data-preparation script that nothing in the build or the tests runs.
# Audio is measured with libsndfile (sndfile-info); empty clips and clips peaking under -60 dBFS are
# left out, as are the small pictures (both sides under 512 px) of the gcompris and GNOME packages.
# Missing tools (ffmpeg, webp, sndfile-programs) are installed with apt-get, which needs root or sudo.
# The licence column is the Debian copyright file's (DEP-5 Files globs matched against the installed
# path), or for gcompris the README beside the file in its bundle.
# VQZ_FETCH_ONLY="PKG ..." limits a run to the packages named (to try a change on a few).
#
# Validation split: a file goes to val when the SHA-256 digest of "PACKAGE/PATH" (PATH as in the
# manifest's path column), read as a big-endian number, is 0 mod 10; python3-skimage's coffee.png and
# chelsea.png (shipped in samples/images/) always go to val. Nothing in val may be trained on.
set -eu
set -o pipefail

REV=5            # bump when a selection or conversion rule changes: packages are then redone
MIN_FREE_MB=2048 # stop before the disk under DIR gets fuller than this
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

IMAGE_PKGS="plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds
    lxqt-themes breeze zoph lifeograph gcompris-qt-data gnome-control-center-data darknet python3-skimage
    opencv-doc libjxl-testdata"
SPEECH_PKGS="festvox-ru fillets-ng-data-cs fillets-ng-data-nl asterisk-core-sounds-en-g722
    asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722
    asterisk-core-sounds-ru-g722 klettres-data ktuberling-data"
MUSIC_PKGS="wesnoth-1.16-music warzone2100-music singularity-music drascula-music naev-data flare-game
    hyperrogue-music gcompris-qt-data sonic-pi-samples hydrogen-drumkits"
FORCE_VAL="python3-skimage/usr/lib/python3/dist-packages/skimage/data/coffee.png
    python3-skimage/usr/lib/python3/dist-packages/skimage/data/chelsea.png"
AUDIO_NAMES=(-name '*.wav' -o -name '*.ogg' -o -name '*.opus' -o -name '*.flac' -o -name '*.aiff')

say() { printf 'fetch-training-data: %s\n' "$*"; }
die() { printf 'fetch-training-data: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

GROUPS_WANTED=""
DEST="$REPO/data"
while [ $# -gt 0 ]; do
    case "$1" in
        --images) GROUPS_WANTED="$GROUPS_WANTED images" ;;
        --speech) GROUPS_WANTED="$GROUPS_WANTED speech" ;;
        --music) GROUPS_WANTED="$GROUPS_WANTED music" ;;
        --dest) [ $# -ge 2 ] || die "--dest needs a directory"; DEST=$2; shift ;;
        --dest=*) DEST=${1#--dest=} ;;
        -h|--help) usage 0 ;;
        *) printf 'fetch-training-data: unknown argument "%s"\n' "$1" >&2; usage 2 >&2 ;;
    esac
    shift
done
[ -n "$GROUPS_WANTED" ] || GROUPS_WANTED="images speech music"

mkdir -p "$DEST/debs" "$DEST/tmp" "$DEST/manifest.d"
DEST=$(cd "$DEST" && pwd)
exec 9>"$DEST/.lock"
flock -n 9 || die "another fetch is already writing to $DEST"

# ---- tools ---------------------------------------------------------------------------------------

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@";
    elif command -v sudo >/dev/null 2>&1; then sudo "$@";
    else die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return 0
    say "running apt-get update"
    as_root apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
}

# Installs the Debian packages giving the commands we lack (named in pairs: command package).
need_tools() {
    local missing="" cmd pkg
    while [ $# -gt 0 ]; do
        cmd=$1 pkg=$2; shift 2
        command -v "$cmd" >/dev/null 2>&1 || case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
    done
    [ -z "$missing" ] && return 0
    say "installing missing tools:$missing"
    apt_update_once
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends $missing >/dev/null || die "could not install:$missing"
}

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    die "needs a Debian system (apt-get, dpkg-deb)"
fi
need_tools ffmpeg ffmpeg ffprobe ffmpeg dwebp webp sndfile-info sndfile-programs sha256sum coreutils flock util-linux
command -v python3 >/dev/null 2>&1 || die "python3 is needed to unpack the gcompris .rcc bundles"

# ---- download and unpack --------------------------------------------------------------------------

cached_deb() {
    find "$DEST/debs" -maxdepth 1 -type f -name "$1_*.deb" | sort -V | tail -n 1
}

# Prints the cached .deb of a package, downloading it first when there is none.
fetch_deb() {
    local pkg=$1 deb log
    deb=$(cached_deb "$pkg")
    if [ -n "$deb" ]; then printf '%s\n' "$deb"; return 0; fi
    apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1 || apt_update_once
    apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1 ||
        { say "package $pkg is not known to apt (not in this release's sources?)" >&2; return 1; }
    log="$DEST/tmp/apt-download.log"
    if ! (cd "$DEST/debs" && apt-get download -q "$pkg") >"$log" 2>&1; then
        say "apt-get download $pkg failed:" >&2; cat "$log" >&2; return 1
    fi
    deb=$(cached_deb "$pkg")
    [ -n "$deb" ] || { say "apt-get download $pkg left no .deb in $DEST/debs" >&2; return 1; }
    printf '%s\n' "$deb"
}

# ---- selection -------------------------------------------------------------------------------------
# Each selector runs in the unpacked package ($ROOT) and prints "PATH<TAB>NAME" lines: PATH inside
# the package (for a file inside a Qt bundle: BUNDLE.rcc:PATH-IN-BUNDLE), NAME our file name without
# the package prefix and before any format conversion.

emit() { printf '%s\t%s\n' "$1" "$2"; }

# Emits each path read from stdin, named by its part below BASE with / (and spaces) turned into _.
emit_under() {
    local base=$1 p
    while IFS= read -r p; do emit "$p" "$(printf '%s' "${p#"$base"/}" | tr '/ ' '__')"; done
}

# Regular files (not symlinks) below DIR of ROOT matching the find expression, sorted.
files_in() {
    local dir=$1; shift
    [ -d "$ROOT/$dir" ] || { say "$PKG: no directory $dir in the package" >&2; return 1; }
    (cd "$ROOT" && find "$dir" -type f \( "$@" \) | LC_ALL=C sort)
}

# The one regular file DIR/STEM.* (any extension), or an error.
one_file() {
    local dir=$1 stem=$2 hits
    hits=$(cd "$ROOT" && find "$dir" -maxdepth 1 -type f -name "$stem.*" | LC_ALL=C sort)
    [ "$(printf '%s\n' "$hits" | grep -c .)" = 1 ] ||
        { say "$PKG: expected one file $dir/$stem.*, found: ${hits:-none}" >&2; return 1; }
    printf '%s\n' "$hits"
}

# Unpacks the gcompris bundles into $ROOT/.rcc/BUNDLE/ and emits the entries matching the globs.
rcc_select() {
    local bundle=$1 b p; shift
    b="usr/share/gcompris-qt/rcc/$bundle.rcc"
    [ -f "$ROOT/$b" ] || { say "$PKG: no bundle $b" >&2; return 1; }
    if [ ! -d "$ROOT/.rcc/$bundle" ]; then
        python3 "$HERE/extract-rcc.py" "$ROOT/$b" "$ROOT/.rcc/$bundle" '*' ||
            { say "$PKG: could not unpack $b" >&2; return 1; }
    fi
    (cd "$ROOT/.rcc/$bundle" && find . -type f \( "$@" \) | sed 's|^\./||' | LC_ALL=C sort) |
        while IFS= read -r p; do
            emit "$b:$p" "${bundle}_$(printf '%s' "${p#gcompris/src/activities/"$bundle"/resource/}" | tr '/ ' '__')"
        done
}

select_images() {
    local w n d
    case "$PKG" in
        plasma-workspace-wallpapers) # the largest size of each photograph (the others are links to it)
            for w in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut \
                     Path summer_1am; do
                d="usr/share/wallpapers/$w/contents/images"
                [ -d "$ROOT/$d" ] || { say "$PKG: no $d" >&2; return 1; }
                n=$(cd "$ROOT" && find "$d" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
                emit "$n" "${w}_${n##*/}"
            done ;;
        lomiri-wallpapers-16.04) # the analogpattern and umang wallpapers are patterns, not photographs
            files_in usr/share/backgrounds -name '*.jpg' ! -name 'analogpattern*' ! -name 'umang*' |
                emit_under usr/share/backgrounds ;;
        lomiri-wallpapers-20.04)
            emit usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg Kleiber_by_Lukas_Baubkus.jpg ;;
        mate-backgrounds)
            files_in usr/share/backgrounds/mate/nature -name '*.jpg' | emit_under usr/share/backgrounds/mate/nature ;;
        lxqt-themes) # the photographs among the wallpapers
            for w in Butterfly-Kenneth-Wimer fog after-the-rain Valendas flowers this-is-not-windows drop cloud \
                     appleflower butterfly beam; do
                one_file usr/share/lxqt/wallpapers "$w" || exit 1
            done | emit_under usr/share/lxqt/wallpapers ;;
        breeze)
            emit usr/share/wallpapers/Next/contents/images/5120x2880.png Next_5120x2880.png ;;
        zoph)
            d=usr/share/zoph/www/php/templates/default/images/backgrounds
            files_in "$d" -name '*.jpg' | emit_under "$d" ;;
        lifeograph)
            files_in usr/share/net.sourceforge.Lifeograph/backgrounds -name '*.jpg' |
                emit_under usr/share/net.sourceforge.Lifeograph/backgrounds ;;
        gcompris-qt-data) # photographs only: the details bundle also holds paintings (README says which)
            rcc_select erase -name '*.webp' || return 1
            rcc_select explore_monuments -name '*.webp' || return 1
            rcc_select explore_world_animals -name '*.webp' || return 1
            rcc_select explore_farm_animals -name '*.webp' || return 1
            rcc_select details -name '*_background.webp' ! -name '*Gogh*' ! -name '*PereTanguy*' \
                ! -name '*Eglise_dAuvers*' ;;
        gnome-control-center-data) # the top-level faces are photographs; legacy/ holds 96 px icons
            (cd "$ROOT" && find usr/share/pixmaps/faces -maxdepth 1 -type f -name '*.jpg' | LC_ALL=C sort) |
                emit_under usr/share/pixmaps/faces ;;
        darknet)
            for w in dog eagle giraffe horses kite person; do
                emit "usr/share/darknet/data/$w.jpg" "$w.jpg"
            done ;;
        python3-skimage)
            for w in astronaut.png coffee.png chelsea.png motorcycle_left.png motorcycle_right.png rocket.jpg; do
                emit "usr/lib/python3/dist-packages/skimage/data/$w" "$w"
            done ;;
        opencv-doc) # the photographs among the sample data
            for w in baboon fruits apple orange building home messi5 squirrel_cls leuvenA aloeL butterfly board graf1 \
                     rubberwhale1 chicky_512; do
                one_file usr/share/doc/opencv-doc/examples/data "$w" || exit 1
            done | emit_under usr/share/doc/opencv-doc/examples/data ;;
        libjxl-testdata)
            emit usr/share/libjxl-testdata/jxl/flower/flower.png flower.png || return 1
            files_in usr/share/libjxl-testdata/external/wesaturate/500px -name '*_srgb8.png' |
                emit_under usr/share/libjxl-testdata/external/wesaturate/500px ;;
        *) say "no image selection for $PKG" >&2; return 1 ;;
    esac
}

select_speech() {
    local d
    case "$PKG" in
        festvox-ru)
            d=usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav
            files_in "$d" -name '*.wav' | emit_under "$d" ;;
        fillets-ng-data-*)
            files_in usr/share/games/fillets-ng -name '*.ogg' | emit_under usr/share/games/fillets-ng/sound ;;
        asterisk-core-sounds-*-g722)
            files_in usr/share/asterisk/sounds -name '*.g722' | emit_under usr/share/asterisk/sounds ;;
        klettres-data)
            files_in usr/share/klettres -name '*.ogg' | emit_under usr/share/klettres ;;
        ktuberling-data)
            files_in usr/share/ktuberling/sounds "${AUDIO_NAMES[@]}" | emit_under usr/share/ktuberling/sounds ;;
        *) say "no speech selection for $PKG" >&2; return 1 ;;
    esac
}

select_music() {
    local d
    case "$PKG" in
        wesnoth-1.16-music) d=usr/share/games/wesnoth/1.16/data/core/music ;;
        warzone2100-music) d=usr/share/games/warzone2100/music ;;
        singularity-music) d=usr/share/games/singularity/music ;;
        drascula-music) d=usr/share/scummvm/drascula/audio ;; # the per-language folders only link here
        naev-data) d=usr/share/naev/dat/snd/music ;;
        flare-game) d=usr/share/games/flare/mods/fantasycore/music ;;
        hyperrogue-music) d=usr/share/hyperrogue/music ;;
        hydrogen-drumkits) d=usr/share/hydrogen/data/drumkits ;;
        sonic-pi-samples) # the loops, and the guitar for its acoustic timbre
            files_in usr/share/sonic-pi/samples -name 'loop_*' -o -name 'guit_*' | emit_under usr/share/sonic-pi/samples
            return ;;
        gcompris-qt-data) # recorded instruments and world music; the rest are effects and voices
            rcc_select explore_world_music -name '*.ogg' || return 1
            rcc_select instruments -name '*.ogg' || return 1
            rcc_select melody -name 'xylofon_son*.wav' || return 1
            rcc_select memory-sound -name 'guitar_*.ogg'
            return ;;
        *) say "no music selection for $PKG" >&2; return 1 ;;
    esac
    files_in "$d" "${AUDIO_NAMES[@]}" | emit_under "$d"
}

# ---- licences --------------------------------------------------------------------------------------

# Rewrites installed paths into the source-tree paths the copyright file's Files globs use, where
# the two differ by more than a leading prefix; the rewritten paths are then matched whole.
licence_path_map() {
    case "$PKG" in
        lomiri-wallpapers-16.04) sed 's|^usr/share/backgrounds/|16.04/|' ;;
        lomiri-wallpapers-20.04) sed 's|^usr/share/backgrounds/|20.04/|' ;;
        asterisk-core-sounds-*) sed 's|^usr/share/asterisk/sounds/\([a-z][a-z]\)_[^/]*/|\1-sounds/|' ;;
        sonic-pi-samples) sed 's|^usr/share/sonic-pi/samples/|etc/samples/|' ;;
        opencv-doc) sed 's|^usr/share/doc/opencv-doc/examples/data/|samples/data/|' ;;
        hydrogen-drumkits) sed -e 's|^\(usr/share/hydrogen/data/drumkits/circAfrique\) v4/|\1/|' \
                               -e 's|^usr/share/hydrogen/data/drumkits/\([^/]*\)/.*|drumkits/\1.h2drumkit|' ;;
        *) return 1 ;;
    esac
}

# Reads a DEP-5 style copyright file (or a gcompris resource README: the same fields in stanzas, file
# names on lines of their own, with or without a Files: line above them), then paths on stdin; prints
# for each the licence of the last stanza whose Files globs match the path, else "unknown". Unless
# WHOLE is 1, a glob may also match a trailing part of the path (installed paths carry a prefix the
# source tree lacks: usr/share/wallpapers/Path/... against wallpapers/Path/*).
dep5_licences() {
    awk -v cr="$1" -v whole="${2:-0}" '
        function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
        function glob_re(g,   r, i, c) {
            r = ""
            for (i = 1; i <= length(g); i++) {
                c = substr(g, i, 1)
                if (c == "*") r = r ".*"
                else if (c == "?") r = r "."
                else if (index("\\.^$+(){}[]|", c)) r = r "\\" c
                else r = r c
            }
            return "^" r "$"
        }
        function add_globs(s, text,   n, parts, i, g) {
            n = split(text, parts, /[ \t]+/)
            for (i = 1; i <= n; i++) {
                g = parts[i]; sub(/^\.\//, "", g)
                if (g != "") { ng[s]++; re[s, ng[s]] = glob_re(g) }
            }
        }
        function norm(l) {
            l = trim(l)
            if (tolower(l) ~ /^(public[ -]domain|pd)$/) return "public-domain"
            if (l ~ /^GPLv[0-9]/) l = "GPL-" substr(l, 5)
            if (l ~ /^[A-Za-z-]+ [0-9.]+\+?$/) sub(/ /, "-", l)
            return l == "" ? "unknown" : l
        }
        BEGIN {
            ns = 0; fresh = 1; infiles = 0
            while ((getline line < cr) > 0) {
                if (line ~ /^[ \t\r]*$/) { fresh = 1; infiles = 0; continue }
                if (fresh) { ns++; fresh = 0; ng[ns] = 0; lic[ns] = "" }
                if (line ~ /^[A-Za-z][A-Za-z0-9-]*:/) {
                    field = tolower(substr(line, 1, index(line, ":") - 1))
                    val = substr(line, index(line, ":") + 1)
                    infiles = (field == "files")
                    if (infiles) add_globs(ns, val)
                    else if (field == "license" && lic[ns] == "") lic[ns] = norm(val)
                    continue
                }
                # indented: continues the field above; bare (READMEs): a file name
                if (infiles || line !~ /^[ \t]/) add_globs(ns, line)
            }
        }
        {
            p = $0; sub(/^\.\//, "", p)
            n = split(p, c, "/"); best = 0
            for (s = 1; s <= ns; s++) {
                if (lic[s] == "") continue
                for (g = 1; g <= ng[s] && best != s; g++) {
                    suf = p
                    for (k = 1; k <= n; k++) {
                        if (suf ~ re[s, g]) { best = s; break }
                        if (whole == 1) break
                        suf = substr(suf, length(c[k]) + 2)
                    }
                }
            }
            print best ? lic[best] : "unknown"
        }'
}

# Copyright files that are not machine-readable: the licence they state for the data we take.
fallback_licence() {
    case "$PKG" in
        fillets-ng-data-*) echo GPL-2 ;;
        singularity-music) echo CC-BY-SA-3.0 ;;
        wesnoth-1.16-music) echo GPL-2+ ;;
        *) echo unknown ;;
    esac
}

# Prints one licence per selected path (stdin: the selection). Inside a gcompris bundle, the README
# next to the file (they name the photographer and licence of each picture) wins over the Debian
# copyright file, which predates most of these files.
licences_for() {
    local cr="$ROOT/usr/share/doc/$PKG/copyright" path name inner bundle d readme lic mapped
    while IFS=$'\t' read -r path name; do
        lic=""
        case "$path" in
            *.rcc:*)
                inner=${path#*.rcc:}
                bundle=$(basename "${path%%:*}" .rcc)
                for d in "$(dirname "$inner")" "$(dirname "$(dirname "$inner")")"; do
                    readme="$ROOT/.rcc/$bundle/$d/README"
                    [ -f "$readme" ] || continue
                    lic=$(printf '%s\n' "${inner#"$d"/}" | dep5_licences "$readme")
                    [ "$lic" = unknown ] && lic=""
                    [ -n "$lic" ] && break
                done
                [ -n "$lic" ] || lic=$(printf '%s\n' "$inner" | dep5_licences "$cr") ;;
            *)
                if grep -q '^Files:' "$cr" 2>/dev/null; then
                    if mapped=$(printf '%s\n' "$path" | licence_path_map); then
                        lic=$(printf '%s\n' "$mapped" | dep5_licences "$cr" 1)
                    else
                        lic=$(printf '%s\n' "$path" | dep5_licences "$cr")
                    fi
                else
                    lic=$(fallback_licence)
                fi ;;
        esac
        printf '%s\n' "$lic"
    done
}

# ---- per file --------------------------------------------------------------------------------------

in_val() {
    local key=$1 h r=0 i f
    for f in $FORCE_VAL; do [ "$f" = "$key" ] && return 0; done
    h=$(printf '%s' "$key" | sha256sum | cut -c1-64)
    for ((i = 0; i < 64; i++)); do r=$(( (r * 16 + 16#${h:i:1}) % 10 )); done
    [ "$r" = 0 ]
}

# Copies or converts one selected file into GROUP/SPLIT/ and prints its manifest row (nothing when
# the file is rejected: a picture whose sides are both under MIN_SIDE, a clip peaking under -60 dBFS).
# The gcompris bundles and the GNOME faces also hold small cut-outs and icons; MIN_SIDE drops them.
take_file() {
    local group=$1 path=$2 name=$3 lic=$4 src split out tmp w h sec rate ch bytes sum probe frames peak
    case "$path" in
        *.rcc:*) src="$ROOT/.rcc/$(basename "${path%%:*}" .rcc)/${path#*.rcc:}" ;;
        *) src="$ROOT/$path" ;;
    esac
    [ -f "$src" ] || { say "$PKG: listed file $path is missing from the package" >&2; return 1; }
    split=train
    if in_val "$PKG/$path"; then split="val"; fi
    case "$name" in
        *.webp) name=${name%.webp}.png ;;
        *.g722) name=${name%.g722}.wav ;;
    esac
    out="$group/$split/${PKG}_$name"
    tmp="$DEST/$out.part"
    case "$src" in
        *.webp) dwebp -quiet "$src" -o "$tmp" || { say "$PKG: dwebp failed on $path" >&2; return 1; } ;;
        *.g722) ffmpeg -nostdin -v error -y -f g722 -i "$src" -bitexact -c:a pcm_s16le -f wav "$tmp" ||
                    { say "$PKG: ffmpeg could not decode $path" >&2; return 1; } ;;
        *) cp "$src" "$tmp" || return 1 ;;
    esac
    w=- h=- sec=- rate=- ch=-
    if [ "$group" = images ]; then
        probe=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$tmp" || true)
        w=${probe%%,*} h=${probe#*,}
        case "$w$h" in ''|*[!0-9]*) rm -f "$tmp"; say "$PKG: cannot read the size of $path ($probe)" >&2; return 1 ;; esac
        if [ "$w" -lt "$MIN_SIDE" ] && [ "$h" -lt "$MIN_SIDE" ]; then
            rm -f "$tmp"; say "$PKG: skipped $path (${w}x${h}, under $MIN_SIDE px)" >&2; return 0
        fi
    else
        # measured with libsndfile, the library the codec reads audio with: what it cannot open fails here
        probe=$(sndfile-info "$tmp" 2>&1 || true)
        rate=$(printf '%s\n' "$probe" | sed -n 's/^Sample Rate *: *//p' | tail -n 1)
        ch=$(printf '%s\n' "$probe" | sed -n 's/^Channels *: *//p' | tail -n 1)
        frames=$(printf '%s\n' "$probe" | sed -n 's/^Frames *: *//p' | tail -n 1)
        peak=$(printf '%s\n' "$probe" | sed -n 's/^Signal Max *:.*(\(.*\) dB).*/\1/p' | tail -n 1)
        case "$rate$ch$frames" in
            ''|*[!0-9]*) rm -f "$tmp"; say "$PKG: libsndfile cannot read $path: $(printf '%s' "$probe" | head -n 1)" >&2
                         return 1 ;;
        esac
        if [ "$frames" = 0 ] || ! awk -v p="$peak" 'BEGIN { exit !(p ~ /^-?[0-9.]+$/ && p + 0 > -60) }'; then
            rm -f "$tmp"; say "$PKG: skipped $path (empty or silent: $frames frames, peak ${peak:-?} dB)" >&2; return 0
        fi
        sec=$(awk -v f="$frames" -v r="$rate" 'BEGIN { printf "%.3f", f / r }')
    fi
    mv -f "$tmp" "$DEST/$out" || return 1
    bytes=$(stat -c %s "$DEST/$out")
    sum=$(sha256sum "$DEST/$out" | cut -c1-64)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$PKG" "$VERSION" "$path" "$out" "$split" \
        "$lic" "$bytes" "$w" "$h" "$sec" "$rate" "$ch" "$sum"
}

HEADER="package	version	path	file	split	licence	bytes	width	height	seconds	rate	channels	sha256"

# A fragment is current when it was made by this REV from this version and its files are all there.
fragment_current() {
    local frag=$1 version=$2 f
    [ -f "$frag" ] || return 1
    [ "$(sed -n 1p "$frag")" = "# rev $REV version $version" ] || return 1
    while IFS=$'\t' read -r _ _ _ f _; do
        [ -f "$DEST/$f" ] || return 1
    done < <(sed 1d "$frag")
}

do_package() {
    local group=$1 deb sel lics frag rows path name lic n got
    PKG=$2
    deb=$(fetch_deb "$PKG") || return 1
    VERSION=$(dpkg-deb -f "$deb" Version)
    frag="$DEST/manifest.d/$group/$PKG.tsv"
    if fragment_current "$frag" "$VERSION"; then
        say "$group: $PKG $VERSION up to date ($(($(wc -l < "$frag") - 1)) files)"
        return 0
    fi
    local avail
    avail=$(df -Pm "$DEST" | awk 'NR == 2 {print $4}')
    [ "$avail" -ge "$MIN_FREE_MB" ] ||
        { say "$PKG: only $avail MB free under $DEST (want $MIN_FREE_MB): skipped" >&2; return 1; }
    ROOT="$DEST/tmp/$PKG"
    rm -rf "$ROOT"
    dpkg-deb -x "$deb" "$ROOT" || { say "dpkg-deb -x $deb failed" >&2; return 1; }
    sel="$DEST/tmp/$PKG.sel"
    "select_$group" > "$sel" || { rm -rf "$ROOT"; return 1; }
    n=$(wc -l < "$sel")
    [ "$n" -gt 0 ] || { say "$PKG: selected nothing" >&2; rm -rf "$ROOT"; return 1; }
    if [ "$(cut -f2 "$sel" | sort | uniq -d | head -n 1)" != "" ]; then
        say "$PKG: two selected files get the same name: $(cut -f2 "$sel" | sort | uniq -d | head -n 3 | tr '\n' ' ')" >&2
        rm -rf "$ROOT"; return 1
    fi
    lics="$DEST/tmp/$PKG.lic"
    licences_for < "$sel" > "$lics"
    # files of an earlier run of this package go first, so renamed or dropped ones do not linger
    if [ -f "$frag" ]; then
        sed 1d "$frag" | cut -f4 | while IFS= read -r f; do rm -f "$DEST/$f"; done
    fi
    rm -f "$DEST/$group/train/${PKG}_"*.part "$DEST/$group/val/${PKG}_"*.part # from an interrupted run
    mkdir -p "$DEST/$group/train" "$DEST/$group/val" "$DEST/manifest.d/$group"
    rows="$DEST/tmp/$PKG.rows"
    case "$PKG" in gcompris-qt-data|gnome-control-center-data) MIN_SIDE=512 ;; *) MIN_SIDE=0 ;; esac
    : > "$rows"
    while IFS=$'\t' read -r path name <&3 && IFS= read -r lic <&4; do
        take_file "$group" "$path" "$name" "$lic" >> "$rows" || { rm -rf "$ROOT"; return 1; }
    done 3< "$sel" 4< "$lics"
    { printf '# rev %s version %s\n' "$REV" "$VERSION"; cat "$rows"; } > "$frag.part"
    mv -f "$frag.part" "$frag"
    got=$(wc -l < "$rows")
    say "$group: $PKG $VERSION: $got of $n selected files ($(awk -F'\t' '$5 == "val"' "$rows" | wc -l) in val)"
    rm -rf "$ROOT" "$sel" "$lics" "$rows"
}

# ---- run -------------------------------------------------------------------------------------------

FAILED=""
for group in $GROUPS_WANTED; do
    case "$group" in
        images) pkgs=$IMAGE_PKGS ;;
        speech) pkgs=$SPEECH_PKGS ;;
        music) pkgs=$MUSIC_PKGS ;;
    esac
    for pkg in $pkgs; do
        case " ${VQZ_FETCH_ONLY:-$pkg} " in *" $pkg "*) ;; *) continue ;; esac
        do_package "$group" "$pkg" || { FAILED="$FAILED $group/$pkg"; say "$group: $pkg FAILED" >&2; }
    done
done

# MANIFEST.tsv: every fragment present, whatever groups this run fetched.
{
    printf '%s\n' "$HEADER"
    find "$DEST/manifest.d" -name '*.tsv' -print0 | sort -z | xargs -0 -r cat | grep -v '^#' | LC_ALL=C sort -t$'\t' -k4,4
} > "$DEST/MANIFEST.tsv.part"
mv -f "$DEST/MANIFEST.tsv.part" "$DEST/MANIFEST.tsv"

say "summary of $DEST/MANIFEST.tsv:"
awk -F'\t' 'NR > 1 {
        split($4, a, "/"); k = a[1] " " $5; n[k]++; mb[k] += $7 / 1e6
        if ($8 != "-") mp[k] += $8 * $9 / 1e6; else min[k] += $10 / 60
    }
    END {
        printf "  %-6s %-5s %6s %9s %9s %8s\n", "group", "split", "files", "MB", "Mpixels", "minutes"
        for (g = 1; g <= 3; g++) for (s = 1; s <= 2; s++) {
            k = (g == 1 ? "images" : g == 2 ? "speech" : "music") " " (s == 1 ? "train" : "val")
            if (k in n) printf "  %-6s %-5s %6d %9.1f %9.1f %8.1f\n", substr(k, 1, index(k, " ") - 1),
                substr(k, index(k, " ") + 1), n[k], mb[k], mp[k], min[k]
        }
    }' "$DEST/MANIFEST.tsv"

missing=""
for pkg in $IMAGE_PKGS; do [ -f "$DEST/manifest.d/images/$pkg.tsv" ] || missing="$missing images/$pkg"; done
for pkg in $SPEECH_PKGS; do [ -f "$DEST/manifest.d/speech/$pkg.tsv" ] || missing="$missing speech/$pkg"; done
for pkg in $MUSIC_PKGS; do [ -f "$DEST/manifest.d/music/$pkg.tsv" ] || missing="$missing music/$pkg"; done
if [ -z "$missing" ]; then
    cp "$DEST/MANIFEST.tsv" "$REPO/samples/DATA-MANIFEST.tsv"
    say "refreshed samples/DATA-MANIFEST.tsv"
else
    say "samples/DATA-MANIFEST.tsv not refreshed: not fetched yet:$missing"
fi
rm -rf "$DEST/tmp"
[ -z "$FAILED" ] || die "failed:$FAILED"
