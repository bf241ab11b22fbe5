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

echo "1..11"
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
exit $fail
