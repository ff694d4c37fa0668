#!/bin/sh
# One-shot (service temporal-admin-tools): create or upgrade the Temporal schemas in the
# two Postgres databases the postgres init script created (deploy/postgres/initdb.d).
# Safe to re-run: setup-schema keeps an existing version, update-schema applies only
# the versions that are missing. Connection settings come from the environment
# (SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD), never the command line.
set -eu

: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

until nc -z -w 5 "$SQL_HOST" "${SQL_PORT:-5432}"; do
  echo "waiting for postgres at $SQL_HOST:${SQL_PORT:-5432}"
  sleep 2
done

temporal-sql-tool --db temporal setup-schema -v 0.0
temporal-sql-tool --db temporal update-schema -d "$SCHEMA_DIR/temporal/versioned"

temporal-sql-tool --db temporal_visibility setup-schema -v 0.0
temporal-sql-tool --db temporal_visibility update-schema -d "$SCHEMA_DIR/visibility/versioned"

echo "temporal schemas are up to date"
