#!/bin/sh
# tests/layers.sh ROOT — fails when a file under ROOT/runtime/ includes a
# header of a higher layer (DESIGN.md, "Lower layers never include higher
# ones").  Each folder of runtime/ is one layer; folders of equal rank
# (sched and reactor) may include each other.  A folder missing from the
# table is an error, so a new folder must be placed before it builds, and
# so is an include that resolves outside runtime/ (the library sees only
# its own layers and include/, which it reaches by <async_io/...>).
# Given the library's object files as well, it also fails when an object
# of a layer calls a function (or uses a variable) that an object of a
# higher layer defines: an edge that no include shows, since a lower
# layer may declare what a higher one defines.
#   tests/layers.sh ROOT [OBJECT...]  check ROOT's tree (and the objects,
#                                     built from ROOT/runtime/FOLDER/...)
#   tests/layers.sh --self-test       check that it catches what it should
set -u
# sh has no local variables: every function's names are its own.

# folder:rank, bottom to top.  Add a layer here when its folder appears.
LAYERS="base:0 context:0 fiber:1 sched:2 reactor:2 sync:3 net:4 tls:5 http:6"

rank_of() {
    for l in $LAYERS; do
        if [ "${l%%:*}" = "$1" ]; then
            echo "${l#*:}"
            return 0
        fi
    done
    return 1
}

# check ROOT: prints one line per violation, returns 1 if there was any.
check() {
    croot=$(cd "$1" && pwd) || return 2
    cbad=0
    for dir in "$croot"/runtime/*; do
        name=${dir##*/}
        if [ ! -d "$dir" ]; then
            echo "runtime/$name: a file outside any layer folder"
            cbad=1
        elif ! rank_of "$name" >/dev/null; then
            echo "runtime/$name: a folder that tests/layers.sh does not place (add it to LAYERS)"
            cbad=1
        fi
    done
    ctmp=$(mktemp) || return 2
    find "$croot/runtime" -type f \( -name '*.c' -o -name '*.h' -o -name '*.S' \) | sort >"$ctmp"
    while read -r file; do
        rel=${file#"$croot"/}
        from=${rel#runtime/}
        from=${from%%/*}
        from_rank=$(rank_of "$from") || continue # reported above
        # Quoted includes only: <...> reaches include/ and the system.
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file" |
        while read -r inc; do
            target=$(realpath -m "$(dirname "$file")/$inc")
            case "$target" in
            "$croot"/runtime/*/*) ;;
            *)
                echo "$rel: includes \"$inc\", outside runtime/"
                echo x
                continue
                ;;
            esac
            to=${target#"$croot"/runtime/}
            to=${to%%/*}
            to_rank=$(rank_of "$to") || continue # reported above
            if [ "$to_rank" -gt "$from_rank" ]; then
                echo "$rel: includes \"$inc\": $from (layer $from_rank) may not include $to (layer $to_rank)"
                echo x
            fi
        done
    done <"$ctmp" >"$ctmp.out"
    rm -f "$ctmp"
    grep -v '^x$' "$ctmp.out"
    grep -q '^x$' "$ctmp.out" && cbad=1
    rm -f "$ctmp.out"
    return $cbad
}

# objects OBJECT...: the same rule for the symbols the objects define and
# use; an object's layer is the runtime/ folder its source sits in.
objects() {
    otmp=$(mktemp -d) || return 2
    for o in "$@"; do
        case "$o" in
        */runtime/*/*) ;;
        *) continue ;; # not a runtime source's object
        esac
        folder=${o##*/runtime/}
        folder=${folder%%/*}
        src=${o##*/runtime/}
        src=runtime/${src%.o}
        rank=$(rank_of "$folder") || continue # reported by check
        nm -g --defined-only "$o" | awk -v f="$folder" -v r="$rank" 'NF >= 3 { print $3, f, r }' >>"$otmp/defs" || return 2
        nm -u "$o" | awk -v f="$folder" -v r="$rank" -v s="$src" 'NF >= 2 { print $2, f, r, s }' >>"$otmp/uses" || return 2
    done
    touch "$otmp/defs" "$otmp/uses"
    awk 'NR == FNR { def[$1] = $2; rank[$1] = $3; next }
         ($1 in def) && rank[$1] > $3 {
             printf "%s: uses %s of %s (layer %s) from %s (layer %s)\n", $4, $1, def[$1], rank[$1], $2, $3
             bad = 1
         }
         END { exit bad }' "$otmp/defs" "$otmp/uses"
    orc=$?
    rm -rf "$otmp"
    return $orc
}

# A tree with one fault; expect check to name it.
expect_caught() {
    what=$1 file=$2 text=$3 want=$4
    t=$(mktemp -d) || exit 2
    mkdir -p "$t/runtime/sched" "$t/runtime/sync" "$t/runtime/net"
    printf '#include "../sched/sched.h"\n' >"$t/runtime/sync/ok.c"
    printf '\n' >"$t/runtime/sched/sched.h"
    mkdir -p "$(dirname "$t/$file")"
    printf '%s\n' "$text" >"$t/$file"
    out=$(check "$t")
    erc=$?
    rm -rf "$t"
    if [ $erc -ne 1 ] || ! printf '%s\n' "$out" | grep -q "$want"; then
        echo "self-test: $what not caught (exit $erc): $out"
        return 1
    fi
    return 0
}

self_test() {
    fails=0
    expect_caught "sched including sync" runtime/sched/x.c '#include "../sync/y.h"' \
        'sched (layer 2) may not include sync (layer 3)' || fails=1
    expect_caught "an include with spaces" runtime/sched/x.h '#  include  "../net/y.h"' \
        'may not include net' || fails=1
    expect_caught "an unknown folder" runtime/proxy/x.c '' \
        'runtime/proxy: a folder that tests/layers.sh does not place' || fails=1
    expect_caught "a file outside any folder" runtime/x.c '' \
        'runtime/x.c: a file outside any layer folder' || fails=1
    expect_caught "an include outside runtime" runtime/net/x.c '#include "../../daemon/log.h"' \
        'outside runtime/' || fails=1
    t=$(mktemp -d) || exit 2
    mkdir -p "$t/runtime/sched" "$t/runtime/reactor"
    printf '#include "../reactor/r.h"\n' >"$t/runtime/sched/s.c"
    printf '#include "../sched/s.h"\n' >"$t/runtime/reactor/r.h"
    printf '\n' >"$t/runtime/sched/s.h"
    if ! out=$(check "$t"); then
        echo "self-test: sched and reactor may include each other: $out"
        fails=1
    fi
    rm -rf "$t"
    # Objects: a sched object calling a function that sync defines.
    t=$(mktemp -d) || exit 2
    mkdir -p "$t/runtime/sched" "$t/runtime/sync"
    printf 'void up(void);\nvoid down(void) { up(); }\n' >"$t/runtime/sched/a.c"
    printf 'void down(void);\nvoid up(void) { }\nvoid more(void) { down(); }\n' >"$t/runtime/sync/b.c"
    if ! "${CC:-cc}" -c -o "$t/runtime/sched/a.c.o" "$t/runtime/sched/a.c" ||
       ! "${CC:-cc}" -c -o "$t/runtime/sync/b.c.o" "$t/runtime/sync/b.c"; then
        echo "self-test: cannot compile with ${CC:-cc}"
        fails=1
    elif out=$(objects "$t/runtime/sched/a.c.o" "$t/runtime/sync/b.c.o"); then
        echo "self-test: a call up a layer not caught"
        fails=1
    elif ! printf '%s\n' "$out" | grep -q 'runtime/sched/a.c: uses up of sync'; then
        echo "self-test: a call up a layer reported as: $out"
        fails=1
    elif printf '%s\n' "$out" | grep -q 'uses down'; then
        echo "self-test: a call down a layer reported: $out"
        fails=1
    fi
    rm -rf "$t"
    [ $fails -eq 0 ] && echo "self-test: every fault caught"
    return $fails
}

case "${1:-}" in
--self-test) self_test ;;
"") echo "usage: $0 ROOT | --self-test" >&2; exit 2 ;;
*)
    tree=$1
    shift
    rc=0
    if check "$tree"; then
        echo "runtime/: every include points down or across"
    else
        echo "runtime/: includes that point up a layer (see DESIGN.md, Layout)"
        rc=1
    fi
    if [ $# -gt 0 ]; then
        if objects "$@"; then
            echo "runtime/: every call of the $# objects points down or across"
        else
            echo "runtime/: objects that use what a higher layer defines"
            rc=1
        fi
    fi
    exit $rc
    ;;
esac
