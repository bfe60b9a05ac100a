#!/bin/sh
# PostgreSQL from Debian's package with the environment contract of the official
# postgres image, for deploy/compose.local-images.yml (no registry to pull it from):
#
#   POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE)  the superuser's password; required
#   POSTGRES_USER     the superuser's name (default postgres)
#   POSTGRES_DB       a database made on the first start (default: POSTGRES_USER)
#   PGDATA            the cluster (default /var/lib/postgresql/data, a volume)
#
# On the first start (an empty PGDATA) the cluster is made with scram-sha-256
# passwords for connections over TCP from anywhere and trust on the local socket, as
# the official image does; later starts find it there. Arguments are passed on to
# postgres (e.g. -c shared_buffers=256MB).
set -eu

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set" >&2
    exit 1
  fi
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  echo "initializing the database cluster in $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
    > /dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    quoted=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
    printf 'CREATE DATABASE "%s";\n' "$quoted" \
      | postgres --single -j -D "$PGDATA" postgres > /dev/null
  fi
  echo "database cluster ready"
fi

exec postgres -D "$PGDATA" "$@"
