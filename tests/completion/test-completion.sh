#!/bin/bash
# TAP test: the bash completion offers commands, options and slot names.
set -u
src="${ABDEPLOY_SRCDIR:?}"
if [ ! -r /usr/share/bash-completion/bash_completion ]; then
    echo "1..0 # SKIP bash-completion is not installed"
    exit 0
fi
# shellcheck disable=SC1091
source /usr/share/bash-completion/bash_completion
# shellcheck disable=SC1091
source "$src/data/completion/abdeploy.bash"

complete_line() {
    COMP_LINE="$1"
    read -r -a COMP_WORDS <<< "$1"
    [[ "$1" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _abdeploy abdeploy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "${COMPREPLY[*]}"
}

n=0
fail=0
# not_offered LINE WORD: the completion of LINE does not offer WORD
not_offered() {
    n=$((n + 1))
    local got
    got=$(complete_line "$1")
    if [[ " $got " != *" $2 "* ]]; then
        echo "ok $n - '$1' does not offer $2"
    else
        echo "not ok $n - '$1' offers $2 (got: $got)"
        fail=1
    fi
}
check() {
    n=$((n + 1))
    local got
    got=$(complete_line "$1")
    if [[ " $got " == *" $2 "* ]]; then
        echo "ok $n - '$1' offers $2"
    else
        echo "not ok $n - '$1' offers $2 (got: $got)"
        fail=1
    fi
}

# A device's last verified manifest: versions come from it, not the network.
sysroot=$(mktemp -d)
trap 'rm -rf "$sysroot"' EXIT
mkdir -p "$sysroot/abdeploy/cache"
cat > "$sysroot/abdeploy/cache/manifest.json" <<'JSON'
{
  "format" : 1,
  "channel" : "stable",
  "releases" : [
    {"version" : "1.4.2", "commit" : "aa", "deltas" : [{"from" : "bb"}]},
    {"version":"2.0.0-rc.1", "commit" : "cc"}
  ]
}
JSON

echo "1..21"
check "abdeploy " "deploy"
check "abdeploy st" "status"
check "abdeploy --sysroot /x ro" "rollback"
check "abdeploy mark-bad " "other"
check "abdeploy mark-good " "b"
check "abdeploy update --" "--allow-downgrade"
check "abdeploy pin --" "--allow-downgrade"
check "abdeploy init --bootloader " "grub"
check "abdeploy init --bootloader sys" "systemd-boot"
check "abdeploy publish " "promote"
check "abdeploy mig" "migrate"
check "abdeploy --sysroot $sysroot pin " "1.4.2"
check "abdeploy --sysroot $sysroot pin 2" "2.0.0-rc.1"
check "abdeploy pin --sysroot $sysroot 1" "1.4.2"
check "abdeploy --sysroot $sysroot update --version " "2.0.0-rc.1"
check "abdeploy --sysroot=$sysroot update --version " "1.4.2"
not_offered "abdeploy --sysroot $sysroot update --version " "stable"
check "abdeploy help " "status"
check "abdeploy publish commit --" "--repo="
not_offered "abdeploy publish commit --" "--sysroot"
not_offered "abdeploy publish release --" "--config"
exit $fail
