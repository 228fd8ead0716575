#!/usr/bin/env bash
# Provides the binaries the end-to-end tier runs: the pulumi CLI, the Python
# language host, the Kubernetes resource provider, and the simulated cluster's
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays
# the kubelets); helm, which the chart scan test (integration tier) runs;
# actionlint, which `make lint-workflows` runs; and act, with which
# tests/e2e/test_workflow_loop.py runs the workflow files (tests/workflows/).
#
# A tool already on PATH is used as it is. Otherwise it is built from the Go
# module proxy, from its wrapper module under tests/e2e/go-modules/ (go.mod and go.sum pin
# every module), into a cache directory that later runs reuse:
#   ${MLPLATFORM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlplatform-e2e}/bin
# A cached binary is rebuilt when its wrapper module or build flags change.
#
# etcd is not built: it comes from Debian's etcd-server package.
#
# Prints, on stdout, one `NAME=PATH` line per tool, ETCD=, KWOK_STAGES= (the
# stages kwok's module ships) and CACHE= (the cache directory), so callers can
# parse it. Progress goes to stderr: each build's start
# and end, with the time and the path of its log (the compiler's output, in
# $cache/logs/<tool>.log, whose end is printed if the build fails).
#
#   scripts/e2e-tools.sh            use PATH, else the cache, else build
#   scripts/e2e-tools.sh --rebuild  build every tool again into the cache
#   scripts/e2e-tools.sh helm ...   only the named tools (etcd only if kube-apiserver is named)
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
tools_dir="$repo_root/tests/e2e/go-modules"
cache_dir="${MLPLATFORM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlplatform-e2e}"
bin_dir="$cache_dir/bin"
log_dir="$cache_dir/logs"
rebuild=0

selected=()
for argument in "$@"; do
    case "$argument" in
        --rebuild) rebuild=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "e2e-tools: unknown option '$argument' (expected --rebuild, --help or tool names)" >&2; exit 2 ;;
        *) selected+=("$argument") ;;
    esac
done

log() { echo "e2e-tools: $*" >&2; }

# tool | wrapper module directory | package | -ldflags
# The versions stamped here are the versions go.mod pins; keep them together.
tool_table() {
    cat <<'EOF'
pulumi|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v3.259.0
pulumi-language-python|pulumi-language-python|github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python|-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v3.79.0
pulumi-resource-kubernetes|pulumi-resource-kubernetes|.|-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=4.25.0-alpha.1768448096+f47bc2d6f199
kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|-X k8s.io/component-base/version.gitVersion=v1.33.3 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33
kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|-X k8s.io/component-base/version.gitVersion=v1.33.3 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33
kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|-X k8s.io/component-base/version.gitVersion=v1.33.3 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33
kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|-X sigs.k8s.io/kwok/pkg/consts.Version=0.8.0 -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=1.33.3
helm|helm|helm.sh/helm/v3/cmd/helm|-X helm.sh/helm/v3/internal/version.version=v3.18.6 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=33 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=33
actionlint|actionlint|github.com/rhysd/actionlint/cmd/actionlint|-X github.com/rhysd/actionlint.version=v1.7.12
act|act|github.com/nektos/act|-X main.version=v0.2.89
EOF
}

require_go() {
    if ! command -v go >/dev/null 2>&1; then
        log "Go is needed to build $1 and is not on PATH; install Go 1.26.0 or newer (make deps checks it), or put $1 on PATH"
        exit 1
    fi
}

# A digest of everything that decides a build's output.
build_stamp() {
    local dir="$1" package="$2" ldflags="$3"
    { cat "$tools_dir/$dir"/*; echo "$package|$ldflags"; go env GOVERSION; } \
        | sha256sum | cut -d' ' -f1
}

# The directory of a module the current wrapper module requires, downloading it
# first if need be (`go list -m` alone reports no directory for a module that is
# not in the module cache yet).
module_dir() {
    local dir
    dir=$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    if [[ -z "$dir" || ! -d "$dir" ]]; then
        log "could not download module $1"
        return 1
    fi
    echo "$dir"
}

# The provider embeds a versioned copy of its schema, which upstream's Makefile
# generates with cmd/pulumi-resource-kubernetes/generate.go. Run that same
# generator in the build directory.
prepare_kubernetes_provider() {
    local build_dir="$1" ldflags="$2" provider_dir version
    provider_dir=$(module_dir github.com/pulumi/pulumi-kubernetes/provider/v4) || return 1
    provider_dir="$provider_dir/cmd/pulumi-resource-kubernetes"
    version=${ldflags##*version.Version=}
    cp "$provider_dir/schema.json" "$provider_dir/terraform-mapping.json" "$build_dir/" \
        && chmod u+w "$build_dir/schema.json" "$build_dir/terraform-mapping.json" \
        && VERSION="$version" go run "$provider_dir/generate.go" \
        && rm "$build_dir/schema.json" "$build_dir/terraform-mapping.json"
}

# Said once, before the first build: a cold build is long and otherwise silent.
announced_build=0
announce_build() {
    [[ $announced_build -eq 1 ]] && return
    announced_build=1
    log "building the e2e tools with $(go env GOVERSION): about 20 minutes on 2 idle cores with a cold cache," \
        "up to 40 on a loaded machine; needs about 4.6 GB of memory at peak and 15 GB of disk for Go's caches." \
        "Build logs: $log_dir/"
}

build_tool() {
    local tool="$1" dir="$2" package="$3" ldflags="$4" stamp="$5"
    local started elapsed build_dir="$cache_dir/src/$dir" build_log="$log_dir/$tool.log"
    require_go "$tool"
    mkdir -p "$bin_dir" "$log_dir"
    announce_build
    log "$(date -u +%H:%M:%S) building $tool from $package (module tests/e2e/go-modules/$dir); log: $build_log"
    started=$(date +%s)
    # Built from a copy, so nothing generated lands in the work tree.
    rm -rf "$build_dir" && mkdir -p "$build_dir" && cp "$tools_dir/$dir"/* "$build_dir/"
    # -mod=readonly: go.sum is committed, so the build verifies every module
    # against it and never rewrites it. GOTOOLCHAIN=local: never download a Go.
    # -v names each package as it is compiled, so the log shows the build moving.
    if ! (cd "$build_dir" \
        && export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0 \
        && if [[ "$tool" == pulumi-resource-kubernetes ]]; then prepare_kubernetes_provider "$build_dir" "$ldflags"; fi \
        && go build -v -trimpath -ldflags "$ldflags" -o "$bin_dir/$tool.tmp" "$package") >"$build_log" 2>&1; then
        log "$(date -u +%H:%M:%S) building $tool failed after $(( $(date +%s) - started ))s; the end of $build_log:"
        tail -n 40 "$build_log" >&2
        exit 1
    fi
    mv "$bin_dir/$tool.tmp" "$bin_dir/$tool"
    echo "$stamp" > "$bin_dir/$tool.stamp"
    elapsed=$(( $(date +%s) - started ))
    log "$(date -u +%H:%M:%S) built $tool in ${elapsed}s"
    echo "$tool $elapsed" >> "$cache_dir/build-times.log"
}

# The Python language host runs programs through an exec shim that pulumi
# releases ship next to it. Take the one from the CLI's own release.
install_exec_shim() {
    local sdk_dir
    sdk_dir=$(cd "$tools_dir/pulumi" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local module_dir github.com/pulumi/pulumi/sdk/v3)
    install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin_dir/pulumi-language-python-exec"
}

resolve_tool() {
    local tool="$1" dir="$2" package="$3" ldflags="$4"
    local ambient stamp
    ambient=$(command -v "$tool" || true)
    if [[ -n "$ambient" && "$ambient" != "$bin_dir/$tool" && $rebuild -eq 0 ]]; then
        log "using $tool from PATH: $ambient"
        echo "$tool=$ambient"
        return
    fi
    require_go "$tool"
    stamp=$(build_stamp "$dir" "$package" "$ldflags")
    if [[ $rebuild -eq 1 || ! -x "$bin_dir/$tool" || "$(cat "$bin_dir/$tool.stamp" 2>/dev/null)" != "$stamp" ]]; then
        build_tool "$tool" "$dir" "$package" "$ldflags" "$stamp"
    else
        log "using cached $tool: $bin_dir/$tool"
    fi
    # Installed every time, so it always matches the pinned CLI release.
    if [[ "$tool" == pulumi-language-python ]]; then
        install_exec_shim
    fi
    echo "$tool=$bin_dir/$tool"
}

wanted() {
    local tool="$1" name
    (( ${#selected[@]} == 0 )) && return 0
    for name in "${selected[@]}"; do [[ "$name" == "$tool" ]] && return 0; done
    return 1
}

for name in "${selected[@]}"; do
    if ! tool_table | cut -d'|' -f1 | grep -qx "$name"; then
        log "unknown tool '$name'; known: $(tool_table | cut -d'|' -f1 | tr '\n' ' ')"
        exit 2
    fi
done

# Checked first: no point in building for minutes towards a control plane that cannot start.
etcd_path=""
if wanted kube-apiserver; then
    etcd_path=$(command -v etcd || true)
    if [[ -z "$etcd_path" ]]; then
        log "etcd is not on PATH: install Debian's etcd-server package (make deps, as root; or apt-get install etcd-server)"
        exit 1
    fi
fi

mkdir -p "$cache_dir"
while IFS='|' read -r tool dir package ldflags; do
    if wanted "$tool"; then
        resolve_tool "$tool" "$dir" "$package" "$ldflags"
    fi
done < <(tool_table)
if [[ -n "$etcd_path" ]]; then
    echo "ETCD=$etcd_path"
fi
# kwok refuses to start without stages; its module ships them, at the version go.mod pins.
if wanted kwok; then
    require_go kwok
    kwok_dir=$(cd "$tools_dir/kwok" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local module_dir sigs.k8s.io/kwok)
    echo "KWOK_STAGES=$kwok_dir/kustomize/stage"
fi
echo "CACHE=$cache_dir"
