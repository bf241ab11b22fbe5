# bash completion for abdeploy(8): commands, their options, slot names, and
# the versions of the channel for pin and update --version.

# The versions of the manifest the device last verified
# (SYSROOT/abdeploy/cache/manifest.json, written by check-update and update):
# read from disk, never from the network.
_abdeploy_versions()
{
    local f="${1%/}/abdeploy/cache/manifest.json"
    [[ -r "$f" ]] || return 0
    grep -o '"version"[[:space:]]*:[[:space:]]*"[^"]*"' "$f" 2>/dev/null |
        sed 's/.*"\([^"]*\)"$/\1/'
}

_abdeploy()
{
    local cur prev words cword
    _init_completion -s || return

    local global="--sysroot --config -v --verbose --help"
    local commands="init stage activate deploy rollback status health-check mark-good mark-bad
                    history check-update update resume pin version verify backup restore migrate
                    install publish daemon help"
    local install_layouts="grub-bios grub-efi uboot systemd-boot"
    local cmd="" i sysroot=/
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --sysroot|--config) ((i++)) ;;
            -*) ;;
            *) cmd="${words[i]}"; break ;;
        esac
    done
    local k # --sysroot may stand before or after the command
    for ((k = 1; k < cword; k++)); do
        case "${words[k]}" in
            --sysroot) sysroot="${words[k+1]}" ;;
            --sysroot=*) sysroot="${words[k]#--sysroot=}" ;;
        esac
    done

    case "$prev" in
        --sysroot|--repo|--tree|--gpg-homedir) _filedir -d; return ;;
        --config|--output|--path) _filedir; return ;;
        --bootloader) COMPREPLY=($(compgen -W "grub file uboot custom systemd-boot" -- "$cur"))
            # install takes a disk layout (abdeploy-install(8), LAYOUTS)
            [[ "$cmd" == install ]] && COMPREPLY=($(compgen -W "$install_layouts" -- "$cur"))
            return ;;
        --disk|--trusted-key) _filedir; return ;;
        --progress) COMPREPLY=($(compgen -W "auto bar json none" -- "$cur")); return ;;
        --from) _filedir -d; return ;;
        --version) if [[ "$cmd" == update ]]; then
                COMPREPLY=($(compgen -W "$(_abdeploy_versions "$sysroot")" -- "$cur"))
                return
            fi ;;
    esac
    $split && return

    if [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
        return
    fi

    local opts=""
    case "$cmd" in
        init) opts="--os= --bootloader=" ;;
        stage) opts="--from= --progress= --progress-fd=" ;;
        deploy) opts="--from= --tries= --progress= --progress-fd=" ;;
        activate) opts="--tries=" ;;
        status|history|check-update|version) opts="--json" ;;
        health-check) opts="--no-reboot --json" ;;
        mark-good|mark-bad)
            COMPREPLY=($(compgen -W "booted other a b" -- "$cur"))
            return ;;
        update) opts="--version= --no-activate --allow-downgrade --progress= --progress-fd=" ;;
        resume) opts="--abandon --if-interrupted --progress= --progress-fd=" ;;
        pin) opts="--clear --allow-downgrade --force"
            [[ "$cur" != -* ]] && opts+=" $(_abdeploy_versions "$sysroot")" ;;
        verify) opts="--full --sample= --json --progress= --progress-fd=" ;;
        backup) opts="--output= --force --progress= --progress-fd=" ;;
        restore) opts="--path= --progress= --progress-fd=" ;;
        install) opts="--disk= --size= --bootloader= --from= --os= --trusted-key= --kernel-arg=" ;;
        daemon) opts="--idle-timeout=" ;;
        help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
        publish)
            local sub="" j
            for ((j = i + 1; j < cword; j++)); do
                [[ "${words[j]}" != -* ]] && { sub="${words[j]}"; break; }
            done
            if [[ -z "$sub" ]]; then
                COMPREPLY=($(compgen -W "commit release promote deprecate deltas prune refresh" -- "$cur"))
                return
            fi
            opts="--repo= --gpg-sign= --gpg-homedir="
            case "$sub" in
                commit) opts+=" --tree= --version= --branch= --source-revision= --progress= --progress-fd=" ;;
                release) opts+=" --channel= --version= --rollout= --security --notes= --expires-days=" ;;
                promote) opts+=" --from= --to= --version= --as= --rollout= --expires-days=" ;;
                deprecate) opts+=" --channel= --version= --reason= --expires-days=" ;;
                deltas) opts+=" --channel= --from-last= --no-full-delta --no-packs --expires-days= --progress= --progress-fd=" ;;
                prune) opts+=" --channel= --keep-days= --keep-last= --dry-run --expires-days=" ;;
                refresh) opts+=" --channel= --expires-days=" ;;
            esac
            global="--help" ;; # the global options are not offered under publish
    esac
    COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
    [[ ${COMPREPLY-} == *= ]] && compopt -o nospace 2>/dev/null
}
complete -F _abdeploy abdeploy
