#!/usr/bin/env bash
# A private Docker daemon and the local Lambda base image, for `sam local` on a machine without
# Docker Hub / ECR access (infra/scripts/sam-local.sh uses it).
#
#   infra/scripts/docker.sh [start]    make sure everything is there (idempotent; ~0.2 s when it is):
#                                        1. docker.io (dockerd, containerd, runc) and busybox-static
#                                           installed (apt-get, first run only)
#                                        2. a private dockerd answering on $DOCKER_DIR/docker.sock
#                                           (started in the background when its socket does not answer)
#                                        3. the image local/lambda-provided:al2023 built from local parts
#                                           (when absent, or when its recipe / the host's glibc changed)
#                                      then prints how to point the docker CLI and SAM at the daemon
#   eval "$(infra/scripts/docker.sh env)"   the same, then only `export DOCKER_HOST=...` on stdout
#   infra/scripts/docker.sh status     exit 0 when the daemon answers and the image exists
#   infra/scripts/docker.sh stop       stop the private daemon (images and containers stay in $DOCKER_DIR)
#   infra/scripts/docker.sh rebuild-image   build the image again
#
# The daemon: `dockerd --data-root D/root --exec-root D/exec --pidfile D/dockerd.pid
# -H unix://D/docker.sock --iptables=false --ip6tables=false` (no iptables binary on these machines;
# containers still get the docker0 bridge, 172.17.0.1 = the host, and published ports go through
# docker-proxy). It keeps running after this script exits (log: D/dockerd.log); `stop` ends it.
#
# The image (nothing is pulled; public.ecr.aws/lambda/provided:al2023 is unreachable here): a rootfs with
# busybox-static (/bin/sh and the usual applets: SAM's image build runs `RUN chmod ...` in it), the host's
# glibc (ld-linux-x86-64, libc, libm, libpthread, libdl, librt, libutil, libresolv, libnss_*), libgcc_s,
# and the CA bundle (at Debian's and Amazon Linux's paths), imported with `docker import`. SAM adds its own
# aws-lambda-rie on top (`sam local ... --skip-pull-image --invoke-image local/lambda-provided:al2023`).
# The functions' binaries (cargo-lambda/zig, glibc <= 2.30) run on the host's newer glibc.
#
# Environment:
#   DOCKER_DIR     state directory: data root, exec root, socket, pid file, log (default /var/lib/ept-docker)
#   DOCKER_IMAGE   image name (default local/lambda-provided:al2023)
#   DOCKER_TIMEOUT seconds to wait for a starting daemon (default 60)
set -euo pipefail

DIR="${DOCKER_DIR:-/var/lib/ept-docker}"
IMAGE="${DOCKER_IMAGE:-local/lambda-provided:al2023}"
TIMEOUT="${DOCKER_TIMEOUT:-60}"
SOCK="$DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK"
# The Debian client matches the Debian daemon; a newer docker CLI elsewhere on PATH works too (API negotiation).
DOCKER=docker
[[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
# Bump when the rootfs recipe below changes: the image is rebuilt.
RECIPE=4

say() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

sudo=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "needs root (or sudo) to run dockerd"
    sudo="sudo -n"
fi

daemon_up() { [[ -S "$SOCK" ]] && timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    [[ -x /usr/bin/docker ]] || command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    # busybox-static: a statically linked /bin/busybox (the dynamic `busybox` package would need its libs).
    if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then missing+=(busybox-static); fi
    (( ${#missing[@]} == 0 )) && return 0
    command -v apt-get >/dev/null 2>&1 || die "install ${missing[*]} by hand (no apt-get)"
    say "installing ${missing[*]} (apt-get, first run on this machine)..."
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed"
    # docker.io's postinst cannot start the service here (no systemd): harmless, we start our own daemon.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
}

ensure_daemon() {
    daemon_up && return 0
    $sudo mkdir -p "$DIR/root" "$DIR/exec"
    local pidfile="$DIR/dockerd.pid" pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
        say "dockerd (pid $pid) is running but does not answer yet; waiting"
    else
        # A pid file or socket left by a killed daemon would stop the new one from starting.
        $sudo rm -f "$pidfile" "$SOCK"
        say "starting a private dockerd on $SOCK (log: $DIR/dockerd.log)"
        # setsid: the daemon outlives this script and its terminal; no iptables binary on these machines.
        # 8>&-: it must not inherit the lock of this script (it would hold it for its whole life).
        $sudo setsid dockerd --data-root "$DIR/root" --exec-root "$DIR/exec" --pidfile "$pidfile" \
            -H "unix://$SOCK" --iptables=false --ip6tables=false \
            </dev/null >>"$DIR/dockerd.log" 2>&1 8>&- &
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until daemon_up; do
        if (( SECONDS >= deadline )); then
            tail -n 30 "$DIR/dockerd.log" >&2 || true
            die "dockerd did not answer on $SOCK within ${TIMEOUT}s"
        fi
        sleep 0.3
    done
    say "dockerd $("$DOCKER" version --format '{{.Server.Version}}') ready (pid $(cat "$pidfile" 2>/dev/null))"
}

# What the image is made of: the recipe and the host packages it copies. A different value = rebuild.
image_key() {
    local glibc busybox
    glibc="$(dpkg-query -W -f '${Version}' libc6 2>/dev/null || ldd --version | head -n1)"
    busybox="$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo unknown)"
    echo "recipe=$RECIPE,glibc=$glibc,busybox=$busybox"
}

image_current() {
    local have
    have="$("$DOCKER" image inspect --format '{{index .Config.Labels "ept.image-key"}}' "$IMAGE" 2>/dev/null)" || return 1
    # `docker import -c LABEL` is not supported by every daemon: fall back to the env variable.
    [[ -z "$have" || "$have" == "<no value>" ]] && have="$("$DOCKER" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | sed -n 's/^EPT_IMAGE_KEY=//p')"
    [[ "$have" == "$(image_key)" ]]
}

build_image() {
    local key rootfs lib f
    key="$(image_key)"
    rootfs="$(mktemp -d "${TMPDIR:-/tmp}/ept-rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' RETURN
    say "building $IMAGE from local parts ($key)"
    lib=lib/x86_64-linux-gnu
    [[ "$(uname -m)" == x86_64 ]] || die "only x86_64 hosts are supported (the image copies the host's x86_64 glibc)"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,"$lib",lib64,etc/ssl/certs,etc/pki/tls/certs,tmp,var/task,var/runtime,var/rapid,opt,root,proc,sys,dev}
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
        [[ "$applet" == busybox ]] && continue
        ln -sf /bin/busybox "$rootfs/bin/$applet"
    done
    # glibc (the full set of its shared objects a binary may name) and the gcc runtime, from the host.
    for f in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 \
             libresolv.so.2 libnss_dns.so.2 libnss_files.so.2 libanl.so.1 libgcc_s.so.1; do
        [[ -e "/$lib/$f" ]] || { [[ "$f" == libanl.so.1 ]] && continue; die "/$lib/$f missing on the host"; }
        cp -L "/$lib/$f" "$rootfs/$lib/$f"
        ln -sf "/$lib/$f" "$rootfs/lib64/$f" # Amazon Linux keeps them in /lib64 (LD_LIBRARY_PATH of Lambda)
    done
    cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    ln -sf /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/pki/tls/certs/ca-bundle.crt"
    ln -sf /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/cert.pem"
    printf 'root:x:0:0:root:/root:/bin/sh\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    printf 'NAME="Amazon Linux (local stand-in: busybox + Debian glibc)"\nID=amzn\nVERSION_ID=2023\n' >"$rootfs/etc/os-release"
    echo "$key" >"$rootfs/etc/ept-image-key"
    "$DOCKER" rmi "$IMAGE" >/dev/null 2>&1 || true
    # SAM derives <repo>:rapid-<arch> (its aws-lambda-rie added) from the image once and reuses it:
    # drop those, or SAM would keep running the old base.
    local derived
    for derived in $("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "${IMAGE%%:*}" | grep -v "^$IMAGE\$" || true); do
        "$DOCKER" rmi -f "$derived" >/dev/null 2>&1 || true
    done
    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -c . | "$DOCKER" import \
        -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'ENV TZ=:/etc/localtime' \
        -c 'ENV LAMBDA_TASK_ROOT=/var/task' \
        -c 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
        -c "ENV EPT_IMAGE_KEY=$key" \
        -c "LABEL ept.image-key=\"$key\"" \
        -c 'WORKDIR /var/task' \
        -m "local stand-in for public.ecr.aws/lambda/provided:al2023 (infra/scripts/docker.sh)" \
        - "$IMAGE" >/dev/null
    # Smoke test: the shell runs, and the dynamic loader loads libc.
    local out
    out="$("$DOCKER" run --rm --network none --entrypoint /bin/sh "$IMAGE" -c \
        'echo sh-ok; /lib64/ld-linux-x86-64.so.2 --list /lib/x86_64-linux-gnu/libm.so.6 >/dev/null && echo ld-ok')" \
        || die "the new image does not run a container"
    [[ "$out" == *sh-ok*ld-ok* ]] || die "image check failed: $out"
    say "$IMAGE built ($("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
}

usage_hint() {
    cat >&2 <<EOF
docker.sh: private Docker daemon ready, image $IMAGE present. Use it with:
    export DOCKER_HOST=$DOCKER_HOST
    # e.g. sam local invoke HealthFunction --skip-pull-image --invoke-image $IMAGE ...
    # (the daemon keeps running; stop it with: infra/scripts/docker.sh stop)
EOF
}

lock() {
    $sudo mkdir -p "$DIR"
    exec 8>"$DIR/.docker-sh.lock"
    if command -v flock >/dev/null 2>&1; then flock 8; fi
}

case "${1:-start}" in
    start|"")
        lock; ensure_packages; ensure_daemon
        image_current || build_image
        usage_hint
        echo "export DOCKER_HOST=$DOCKER_HOST"
        ;;
    env)
        lock; ensure_packages; ensure_daemon
        image_current || build_image
        echo "export DOCKER_HOST=$DOCKER_HOST"
        ;;
    rebuild-image)
        lock; ensure_packages; ensure_daemon; build_image
        echo "export DOCKER_HOST=$DOCKER_HOST"
        ;;
    status)
        daemon_up || { say "dockerd does not answer on $SOCK"; exit 1; }
        image_current || { say "image $IMAGE missing or outdated"; exit 1; }
        say "dockerd answers on $SOCK; $IMAGE is current"
        ;;
    stop)
        pid="$(cat "$DIR/dockerd.pid" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            $sudo kill -TERM "$pid"
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not stop within 30 s"
            say "dockerd (pid $pid) stopped"
        else
            say "no private dockerd running"
        fi
        ;;
    -h|--help) sed -n '2,33p' "$0" ;;
    *) sed -n '2,33p' "$0" >&2; exit 2 ;;
esac
