#!/bin/sh
# The benchmark's upstream app (bench/gateway/README.md): nginx, one worker, serving
# GET /small (13 bytes) and GET /64k (65,536 bytes) on 127.0.0.1:$PORT inside the app's
# instance. nginx comes from the host's /usr, which the instance's root shares read-only;
# everything it writes goes to /tmp.
set -eu
PORT=${PORT:-3000}
run=/tmp/upstream
mkdir -p "$run"
# The 64 KiB body: one fixed byte repeated, made here so the source stays small.
head -c 65536 /dev/zero | tr '\0' 'k' >"$run/64k"
sed -e "s|@PORT@|$PORT|g" -e "s|@RUN@|$run|g" nginx.conf.in >"$run/nginx.conf"
exec /usr/sbin/nginx -e stderr -p "$run" -c "$run/nginx.conf"
