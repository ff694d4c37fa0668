#!/bin/sh
# One-shot (service temporal-create-namespace): once the Temporal server answers, create
# the namespace omniflow uses and register our custom search attributes in it.
# The temporalio/server image (unlike the dev server) creates no namespace by itself.
#
#   TEMPORAL_ADDRESS     frontend host:port
#   NAMESPACE            must equal the app's OMNIFLOW_TEMPORAL_NAMESPACE
#   NAMESPACE_RETENTION  how long closed workflow histories are kept
#   SEARCH_ATTRIBUTES    "Name=Type ..." (workflows/search_attributes.py CLI_TYPES)
#
# Safe to re-run: existing namespace and attributes are left alone.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"
ATTEMPTS=60

attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  [ "$attempt" -lt "$ATTEMPTS" ] || { echo "temporal at $TEMPORAL_ADDRESS is not healthy" >&2; exit 1; }
  echo "waiting for temporal at $TEMPORAL_ADDRESS ($attempt/$ATTEMPTS)"
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
    --namespace "$NAMESPACE" --retention "${NAMESPACE_RETENTION:-168h}"
  echo "namespace $NAMESPACE created"
fi

# A new namespace reaches the frontend's cache within seconds: retry until it is usable.
attempt=1
until existing=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" 2>&1); do
  [ "$attempt" -lt "$ATTEMPTS" ] || { echo "$existing" >&2; exit 1; }
  attempt=$((attempt + 1))
  sleep 2
done

probe=""
for spec in $SEARCH_ATTRIBUTES; do
  name=${spec%%=*}
  type=${spec#*=}
  if printf '%s\n' "$existing" | grep -qw -- "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
      --namespace "$NAMESPACE" --name "$name" --type "$type"
    echo "search attribute $name ($type) created"
  fi
  case "$type" in
    Int | Double) value=0 ;;
    Bool) value=false ;;
    Datetime) value='"2000-01-01T00:00:00Z"' ;;
    *) value='"probe"' ;;
  esac
  probe="${probe:+$probe AND }$name = $value"
done

# Visibility queries resolve attribute names the way workflow starts do: once this query
# is accepted, the API and workers can use every attribute.
attempt=1
until temporal workflow list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
    --limit 1 --query "$probe" >/dev/null 2>&1; do
  [ "$attempt" -lt "$ATTEMPTS" ] || { echo "search attributes not usable: $probe" >&2; exit 1; }
  attempt=$((attempt + 1))
  sleep 2
done
echo "namespace $NAMESPACE ready with search attributes: $SEARCH_ATTRIBUTES"
