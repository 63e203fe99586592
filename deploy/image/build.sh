#!/usr/bin/env bash
# deploy/image/build.sh BINARY APP_WASM PUBLIC_DIR OUT_DIR
#
# The switchyard OCI image, built without a container daemon (there is none
# here nor in CI) by umoci (Debian's `umoci`; `just install-deploy-tools`):
#
#   deploy/image/build.sh target/dist/switchyard build/app.wasm public target/image
#
# One layer, no base image. Its root file system holds only:
# - /switchyard, the BINARY, and the shared libraries it links (as `ldd`
#   names them, the dynamic loader included), at their paths on this host:
#   no shell, no coreutils, nothing else to run;
# - /app/switchyard.toml (deploy/image/switchyard.toml), /app/app.wasm (the
#   APP_WASM component) and /app/public (a copy of PUBLIC_DIR), read-only to
#   the server's user;
# - /etc/passwd and /etc/group with `nonroot` (uid and gid 65532), whom the
#   image runs as, and /etc/nsswitch.conf (host names: /etc/hosts, then DNS);
# - an empty /tmp (mode 1777), where the compile cache goes
#   (XDG_CACHE_HOME=/tmp/cache): deploy/kubernetes mounts an emptyDir there,
#   so the root file system can be read-only.
#
# Its config: user 65532:65532, working directory /app, `/switchyard serve`,
# ports 3000 (pages) and 9000 (admin: /metrics, /healthz, /readyz), JSON
# logs, OCI labels (title, source, version, revision).
#
# It writes OUT_DIR/oci, the OCI image layout (tag `latest`, for umoci and
# skopeo), and OUT_DIR/switchyard.tar, the same layout as one archive that
# `podman load -i` and `docker load -i` take (Docker 25 or later; its index
# names the image switchyard:latest for each of them, and a manifest.json
# does for Docker's classic image store), then prints the sizes.
#
# Optional: IMAGE_SOURCE, the source repository's URL (default: the
# checkout's `origin` remote when it is a URL).
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 BINARY APP_WASM PUBLIC_DIR OUT_DIR" >&2
    exit 2
fi
binary=$1 app=$2 public=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
name=switchyard tag=latest

fail() {
    echo "error: $*" >&2
    exit 1
}
for tool in umoci jq ldd tar; do
    command -v "$tool" >/dev/null || fail "\`$tool\` not found: install it with \`just install-deploy-tools\`"
done
[ -f "$binary" ] && [ -x "$binary" ] || fail "\`$binary\` is not an executable: build it with \`cargo build --profile dist -p switchyard\`"
[ -f "$app" ] || fail "component \`$app\` not found: build it with \`just build-guest\`"
[ -d "$public" ] || fail "\`$public\` is not a directory"

mkdir -p "$out"
layout="$out/oci"
archive="$out/$name.tar"
rm -rf "$layout" "$archive"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# An empty image, unpacked to a bundle whose rootfs/ we fill. `--rootless`
# (also as root) so that the same steps work for any user: files the user
# owns go into the layer as root's.
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --rootless --image "$layout:$tag" "$work/bundle"
rootfs="$work/bundle/rootfs"

# Without its debug info (`dist` keeps line tables, most of its size): the
# image has no debugger, and backtraces are off in production.
install -m 0755 "$binary" "$rootfs/switchyard"
if command -v strip >/dev/null; then
    strip --strip-debug "$rootfs/switchyard"
else
    echo "warning: no \`strip\` (binutils): the image keeps the binary's debug info" >&2
fi

# The libraries the binary loads, and the loader itself: `ldd` prints
# `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` for each and
# `/lib64/ld-linux-x86-64.so.2 (0x...)` for the loader. Each is copied (its
# content, not a symlink) to the path named, which is where the loader and
# the binary's own interpreter entry look for it.
if ! linked=$(ldd "$binary" 2>&1); then
    case "$linked" in
        *"not a dynamic executable"* | *"statically linked"*) linked="" ;;
        *) fail "\`ldd $binary\` failed: $linked" ;;
    esac
fi
if grep -q "not found" <<<"$linked"; then
    fail "\`$binary\` needs libraries this host lacks:"$'\n'"$(grep "not found" <<<"$linked")"
fi
libraries=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$linked" | sort -u)
for library in $libraries; do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
    chmod 0755 "$rootfs$library"
done

mkdir -p "$rootfs/app" "$rootfs/etc" "$rootfs/tmp"
install -m 0644 "$here/switchyard.toml" "$rootfs/app/switchyard.toml"
install -m 0644 "$app" "$rootfs/app/app.wasm"
cp -R "$public" "$rootfs/app/public"
chmod -R u=rwX,go=rX "$rootfs/app"
chmod 1777 "$rootfs/tmp"
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
# Without this file glibc asks DNS before /etc/hosts, and takes a "no such
# name" as final: `localhost` could then fail to resolve in a cluster.
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
unpacked=$(du -sb "$rootfs" | cut -f1)

umoci repack --image "$layout:$tag" --history.created_by "deploy/image/build.sh" "$work/bundle"

version=$("$binary" --version | awk 'NR == 1 { print $2 }')
source=${IMAGE_SOURCE:-$(git -C "$here" remote get-url origin 2>/dev/null || true)}
# Never a credential into the image: `https://user:token@host/...` loses its user part.
source=$(printf '%s' "$source" | sed -E 's#^(https?://)[^/@]*@#\1#')
revision=$(git -C "$here" rev-parse HEAD 2>/dev/null || true)
labels=(
    "org.opencontainers.image.title=$name"
    "org.opencontainers.image.description=Serves server-rendered web pages from WebAssembly components"
    "org.opencontainers.image.version=$version"
)
case "$source" in
    https://* | http://*) labels+=("org.opencontainers.image.source=$source") ;;
    *) echo "warning: no source URL to label the image with: set IMAGE_SOURCE" >&2 ;;
esac
[ -z "$revision" ] || labels+=("org.opencontainers.image.revision=$revision")
config=(
    --config.user 65532:65532
    --config.workingdir /app
    --config.entrypoint /switchyard
    --config.cmd serve
    --config.exposedports 3000/tcp
    --config.exposedports 9000/tcp
    --config.env XDG_CACHE_HOME=/tmp/cache
    --config.env SWITCHYARD_LISTEN=0.0.0.0:3000
    --config.env SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9000
    --config.env SWITCHYARD_LOG_FORMAT=json
)
for label in "${labels[@]}"; do
    config+=(--config.label "$label" --manifest.annotation "$label")
done
umoci config --image "$layout:$tag" --no-history --os linux "${config[@]}"
umoci gc --layout "$layout"

# The archive: the layout, its index naming the image for each loader
# (podman reads `org.opencontainers.image.ref.name` as NAME:TAG, Docker's
# containerd store `io.containerd.image.name`), and a Docker manifest.json for
# Docker's classic store, as `docker save` writes them.
manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
manifest="$layout/blobs/sha256/${manifest#sha256:}"
mkdir "$work/archive"
cp -R "$layout/oci-layout" "$layout/blobs" "$work/archive/"
jq -c --arg name "$name:$tag" '.manifests[0].annotations += {
        "org.opencontainers.image.ref.name": $name,
        "io.containerd.image.name": ("docker.io/library/" + $name)
    }' "$layout/index.json" >"$work/archive/index.json"
jq -c --arg name "$name:$tag" '[{
        Config: ("blobs/sha256/" + (.config.digest | ltrimstr("sha256:"))),
        RepoTags: [$name],
        Layers: [.layers[].digest | "blobs/sha256/" + ltrimstr("sha256:")]
    }]' "$manifest" >"$work/archive/manifest.json"
tar --create --file "$archive" --directory "$work/archive" --sort=name \
    --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
    oci-layout index.json manifest.json blobs

mib() { awk -v bytes="$1" 'BEGIN { printf "%.1f MiB", bytes / 1048576 }'; }
compressed=$(jq '[.layers[].size] | add' "$manifest")
echo "built $name:$tag: $layout (OCI layout) and $archive ($(mib "$(stat -c %s "$archive")"))"
echo "  layer: $(mib "$compressed") compressed, $(mib "$unpacked") unpacked"
echo "  libraries:" $libraries
