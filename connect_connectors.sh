#!/usr/bin/env bash
# Register (or update) the pipeline's connectors with Kafka Connect, then wait
# until each connector and all its tasks are RUNNING. Safe to run again at any time.
#
#   ./connect_connectors.sh                       # register-postgres.json register_cassandra.json
#   ./connect_connectors.sh register-postgres.json
#   CONNECT_URL=http://connect:8083 ./connect_connectors.sh   # from another container
#
# Settings (environment): CONNECT_URL (default http://127.0.0.1:8083),
# CONNECT_WAIT_SECONDS (how long to wait for Connect and for RUNNING, default 120).
# Needs curl and jq. Exits non-zero, saying why, if any connector does not run.
set -euo pipefail

connect_url=${CONNECT_URL:-http://127.0.0.1:8083}
wait_seconds=${CONNECT_WAIT_SECONDS:-120}
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
  set -- "$here/register-postgres.json" "$here/register_cassandra.json"
fi

say() { printf '%s\n' "connectors: $*"; }
fail() { printf '%s\n' "connectors: ERROR: $*" >&2; exit 1; }
for tool in curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is required (apt-get install $tool)"
done

# curl_json METHOD PATH [BODY]: prints the body, returns non-zero on HTTP >= 400.
curl_json() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -X "$method" -H 'Content-Type: application/json' -w '\n%{http_code}')
  [ -n "$body" ] && args+=(--data-binary "$body")
  local out code
  out=$(curl "${args[@]}" "$connect_url$path") || return 2
  code=${out##*$'\n'}
  printf '%s' "${out%$'\n'*}"
  [ "$code" -lt 400 ] || { printf '\nHTTP %s' "$code"; return 1; }
}

wait_for_connect() {
  local deadline=$((SECONDS + wait_seconds))
  say "waiting for Kafka Connect at $connect_url (up to ${wait_seconds}s)"
  until curl -fsS "$connect_url/connector-plugins" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "Kafka Connect did not answer at $connect_url within ${wait_seconds}s"
    sleep 2
  done
}

validate() {
  local class=$1 config=$2 result
  result=$(curl_json PUT "/connector-plugins/$class/config/validate" "$config") \
    || fail "validation request for $class failed: $result"
  if [ "$(jq '.error_count' <<<"$result")" -ne 0 ]; then
    say "configuration errors:"
    jq -r '.configs[].value | select(.errors | length > 0) | "  \(.name): \(.errors | join("; "))"' <<<"$result" >&2
    return 1
  fi
}

put_config() {
  local name=$1 config=$2 deadline=$((SECONDS + wait_seconds)) out
  # 409 means the worker is rebalancing: try again shortly.
  until out=$(curl_json PUT "/connectors/$name/config" "$config"); do
    case $out in
      *"HTTP 409") [ $SECONDS -lt $deadline ] || fail "$name: Connect kept rebalancing"; sleep 2 ;;
      *) fail "$name: could not create/update: $out" ;;
    esac
  done
}

wait_running() {
  local name=$1 deadline=$((SECONDS + wait_seconds)) status states
  while true; do
    status=$(curl_json GET "/connectors/$name/status" 2>/dev/null) || status='{}'
    # One format with `make status`: RUNNING (task 0=RUNNING, task 1=RUNNING)
    states=$(jq -r '(.connector.state // "UNKNOWN") + " (" + ([.tasks[]? | "task \(.id)=\(.state)"] | if length == 0 then "no tasks" else join(", ") end) + ")"' <<<"$status")
    if jq -e '.connector.state == "FAILED" or any(.tasks[]?; .state == "FAILED")' <<<"$status" >/dev/null; then
      say "$name FAILED; trace:" >&2
      jq -r '(.connector.trace // empty), (.tasks[]? | select(.state == "FAILED") | .trace)' <<<"$status" >&2
      exit 1
    fi
    if jq -e '.connector.state == "RUNNING" and (.tasks | length > 0) and all(.tasks[]; .state == "RUNNING")' <<<"$status" >/dev/null; then
      say "$name $states"
      return 0
    fi
    [ $SECONDS -lt $deadline ] || fail "$name not RUNNING after ${wait_seconds}s (states: $states)"
    sleep 2
  done
}

wait_for_connect
plugins=$(curl_json GET /connector-plugins)
for file in "$@"; do
  [ -f "$file" ] || fail "$file: no such file"
  name=$(jq -er '.name' "$file") || fail "$file: no \"name\""
  config=$(jq -ec '.config' "$file") || fail "$file: no \"config\" object"
  class=$(jq -er '.config["connector.class"]' "$file") || fail "$file: no connector.class"
  # connector.class may be an alias (the simple class name, with or without "Connector"),
  # which Connect resolves only when exactly one installed plugin has it.
  matches=$(jq --arg c "$class" '[.[] | .class | select(. == $c or (split(".") | last) == $c
      or ((split(".") | last) | sub("Connector$"; "")) == $c)] | length' <<<"$plugins")
  [ "$matches" -ge 1 ] \
    || fail "$name: plugin $class is not installed in this Connect worker (see README, Troubleshooting)"
  [ "$matches" -eq 1 ] \
    || fail "$name: $matches installed plugins are called $class; name the class in full in $file"
  say "$name: validating"
  validate "$class" "$(jq -c --arg n "$name" '. + {name: $n}' <<<"$config")" || fail "$name: invalid configuration"
  say "$name: creating or updating"
  put_config "$name" "$config"
  # A task that FAILED under the old configuration stays FAILED through an update.
  curl_json POST "/connectors/$name/restart?includeTasks=true&onlyFailed=true" >/dev/null 2>&1 || true
  sleep 1
  wait_running "$name"
done
say "all connectors RUNNING"
