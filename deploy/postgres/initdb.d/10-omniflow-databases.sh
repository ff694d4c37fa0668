#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume
# (docker-entrypoint-initdb.d). Creates:
#   - role `omniflow`, owner of the application database `omniflow`;
#   - role `temporal`, owner of the Temporal databases `temporal` and `temporal_visibility`
#     (their schema is created by the temporal-admin-tools service, not here).
# Passwords come from APP_DB_PASSWORD and TEMPORAL_DB_PASSWORD (see docker-compose.yml).
# Changing them later does not change the roles: this script does not run again on an
# existing volume (use ALTER ROLE ... PASSWORD, or start from a fresh volume).
set -Eeo pipefail

: "${APP_DB_PASSWORD:?APP_DB_PASSWORD must be set}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    --set app_password="$APP_DB_PASSWORD" \
    --set temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE omniflow LOGIN PASSWORD :'app_password';
CREATE DATABASE omniflow OWNER omniflow;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL
