#!/usr/bin/env bash
# Builds the images berth's Docker tests run, without a registry: `berth-test/busybox:latest`,
# an image FROM scratch holding Debian's statically linked busybox (sh, httpd, sleep, wget...).
# Idempotent: does nothing when the image is already there.
set -euo pipefail
image=berth-test/busybox:latest
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! ls /usr/share/doc/busybox-static >/dev/null 2>&1 && ! apt-get download busybox-static >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get download busybox-static >/dev/null 2>&1
fi
if ls ./*.deb >/dev/null 2>&1; then
  dpkg-deb -x ./*.deb root
  busybox=root/bin/busybox
else
  busybox=/bin/busybox
fi
mkdir -p ctx/bin ctx/tmp ctx/www
cp "$busybox" ctx/bin/busybox
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "ctx/bin/$applet"
done
cat > ctx/Dockerfile <<'DOCKERFILE'
FROM scratch
COPY bin /bin
COPY tmp /tmp
COPY www /www
ENV PATH=/bin
CMD ["sh"]
DOCKERFILE
docker build -q -t "$image" ctx >/dev/null
echo "built $image"
