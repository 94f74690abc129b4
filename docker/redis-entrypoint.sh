#!/bin/sh
# harness-redis: the compose stack's Redis. Makes its TLS certificates on first start, writes the
# ACL users with `harness acl` on every start, runs Redis 7 with TLS only and the default user off,
# then re-applies the production grant of the worker that is primary (docs/deployment.md).
#
# Usage: harness-redis [REDIS-SERVER OPTIONS...]      (e.g. --appendonly yes: persistence)
# Env:   HARNESS_ACL_USERS         worker=user,... (legacy=harness-legacy,candidate=harness-candidate)
#        HARNESS_<WORKER>_PASSWORD each worker's password (HARNESS_LEGACY_REPLICA_PASSWORD for legacy-replica)
#        HARNESS_PRODUCER_PASSWORD, HARNESS_COMPARATOR_PASSWORD, HARNESS_OPERATOR_PASSWORD
#        HARNESS_REDIS_URL         the operator's rediss:// URL to this Redis (grants, health check)
#        HARNESS_ACL_FIRST_PRIMARY the worker that may write production before any cutover (legacy)
#        HARNESS_REDIS_TLS_NAMES   the server certificate's names (DNS:redis,DNS:localhost,IP:127.0.0.1)
# Files: /etc/harness-ca/ca.crt (every client mounts it), /etc/harness-redis/server.{crt,key}.
# Exit codes: 1 a password or a setting is missing or wrong (the message names it).
set -eu
umask 077
ca=/etc/harness-ca/ca.crt
own=/etc/harness-redis
acl=/tmp/harness-users.acl
ready=/tmp/harness-redis-ready  # the health check needs it: users and grants are in place
first_primary="${HARNESS_ACL_FIRST_PRIMARY:-legacy}"
rm -f "$ready"

fail() { echo "harness-redis: $*" >&2; exit 1; }

# A CA made here signs the server certificate, then its key is deleted: nothing can sign another
# certificate for this Redis. Renewal is a new CA (docs/deployment.md).
make_certificates() {
    work="$(mktemp -d)"
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=harness ${HARNESS_STACK:-} Redis CA" \
        -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
    openssl req -newkey rsa:3072 -nodes -subj "/CN=redis" -keyout "$own/server.key" -out "$work/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=${HARNESS_REDIS_TLS_NAMES:-DNS:redis,DNS:localhost,IP:127.0.0.1}" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
        "authorityKeyIdentifier=keyid,issuer" "subjectKeyIdentifier=hash" >"$work/server.ext"
    openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
        -days 825 -extfile "$work/server.ext" -out "$own/server.crt" 2>/dev/null
    install -m 0644 "$work/ca.crt" "$ca"  # public: every harness service verifies the server with it
    rm -rf "$work"
    echo "harness-redis: made a CA and a server certificate ($ca)"
}

# The password of a user, from the variable $1: present, and URL-safe (clients put it in their URL).
check_password() {
    case "$1" in *[!A-Z0-9_]*) fail "$1: a worker name has characters other than a-z, 0-9 and -" ;; esac
    eval "value=\${$1:-}"
    [ -n "$value" ] || fail "$1 is not set: export it before starting the stack (docs/deployment.md)"
    case "$value" in *[!A-Za-z0-9._~-]*) fail "$1 has characters other than letters, digits and . _ ~ -" ;; esac
}

# One ACL file line: role $1, user $2, password variable $3, then `harness acl` options.
acl_line() {
    role="$1" user="$2" password_env="$3"
    shift 3
    check_password "$password_env"
    harness acl --role "$role" --user "$user" --password-env "$password_env" --format aclfile "$@"
}

write_acl_file() {
    [ -n "${HARNESS_ACL_USERS:-}" ] || fail "HARNESS_ACL_USERS is not set (e.g. legacy=harness-legacy,candidate=harness-candidate)"
    {
        echo "user default off"
        acl_line producer harness-producer HARNESS_PRODUCER_PASSWORD
        acl_line comparator harness-comparator HARNESS_COMPARATOR_PASSWORD
        acl_line operator harness-operator HARNESS_OPERATOR_PASSWORD
        for pair in $(echo "$HARNESS_ACL_USERS" | tr ',' ' '); do
            worker="${pair%%=*}" user="${pair#*=}"
            [ "$worker" != "$pair" ] && [ -n "$worker" ] && [ -n "$user" ] \
                || fail "HARNESS_ACL_USERS: '$pair' is not WORKER=USER"
            password_env="HARNESS_$(echo "$worker" | tr 'a-z-' 'A-Z_')_PASSWORD"
            if [ "$worker" = "$first_primary" ]; then
                acl_line worker "$user" "$password_env" --name "$worker" --primary
            else
                acl_line worker "$user" "$password_env" --name "$worker"
            fi
        done
    } >"$acl.new"
    mv "$acl.new" "$acl"
}

# The ACL file gives production to the first primary; after a cutover another worker is primary,
# so once Redis answers, the operator moves the grant to whoever `harness:roles` names.
apply_grants() {
    python - <<'EOF' || { echo "harness-redis: could not re-apply the production grant" >&2; exit 1; }
import os
import time

import redis

from harness.security import grants
from harness.transport.connection import redis_client
from harness.transport.roles import read_roles

client = redis_client(os.environ["HARNESS_REDIS_URL"])
deadline = time.monotonic() + 120
while True:
    try:
        client.ping()
        break
    except redis.ConnectionError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
primary = read_roles(client).primary or os.environ.get("HARNESS_ACL_FIRST_PRIMARY", "legacy")
grants.grant_production(client, primary)
grants.revoke_production(client, primary)
print(f"harness-redis: the production grant is with {primary}", flush=True)
EOF
    touch "$ready"
}

[ -n "${HARNESS_REDIS_URL:-}" ] || fail "HARNESS_REDIS_URL (the operator's URL to this Redis) is not set"
if ! { [ -s "$ca" ] && [ -s "$own/server.crt" ] && openssl verify -CAfile "$ca" "$own/server.crt" >/dev/null 2>&1; }; then
    make_certificates
fi
write_acl_file

# In a grandchild, so that PID 1 (the container's init), not redis-server, reaps it.
(apply_grants &)
exec redis-server --port 0 --tls-port 6379 --bind 0.0.0.0 --dir /data \
    --tls-cert-file "$own/server.crt" --tls-key-file "$own/server.key" --tls-ca-cert-file "$ca" \
    --tls-auth-clients no --aclfile "$acl" "$@"
