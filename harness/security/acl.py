"""Least-privilege Redis ACL rules per role (producer, worker, comparator, operator), from the key names.

Pure: builds the rule tokens of `ACL SETUSER`; harness.security.grants applies them to a server.
Command and key permissions combine only within one selector, so a key another role owns (the
input stream, results streams) sits in a selector with just the commands needed on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.transport import keys

ROLES = ("producer", "worker", "comparator", "operator")

# Every client: the handshake redis-py sends, health checks, and a reconnect's SELECT.
CONNECTION = ("ping", "hello", "auth", "echo", "select", "client|setname", "client|getname", "client|id")
SCRIPTS = ("evalsha", "script|load", "script|exists")  # redis-py runs registered scripts with these
TRANSACTIONS = ("multi", "exec", "discard", "watch", "unwatch")

WORKER_OWN = ("xadd", "xlen", "hset", "hget", "hmget", "hgetall", "hexists", "get", "set", "del", "unlink", "incr",
              "pexpire", "scan", "exists", "time", "subscribe", "unsubscribe")
WORKER_INPUT = ("xreadgroup", "xack", "xgroup|create", "xpending", "xinfo|groups")  # its group: reads, never XADD
PRODUCTION = ("xadd", "hset", "hsetnx", "publish")  # the commit script's writes, and --init-primary
PRODUCER = ("xadd", "publish", "incrby", "hget", "hset", "hgetall", "xtrim", "xinfo|groups", "xinfo|stream",
            "xpending", "xrange", "time")
COMPARATOR_OWN = ("get", "set", "hget", "hset", "hdel", "hgetall", "exists", "expire", "del", "xrange", "xrevrange",
                  "xlen", "xinfo|groups", "xinfo|stream", "xpending", "time")
MEMBERSHIP = ("zadd", "zrem", "zremrangebyscore", "zrange")  # replicas and shards list themselves (membership.py)
SHARD_LEASES = ("incr", "pexpire")  # a comparator shard's partition leases (control.py), beside get/set/del
COMPARATOR_RESULTS = ("xreadgroup", "xack", "xgroup|create", "xgroup|setid", "xgroup|destroy", "xinfo|groups",
                      "xpending", "xrange", "xrevrange", "xlen")
# The operator runs cutovers, rollbacks, retire and status, and moves the production grant.
OPERATOR = ("+@all", "-@dangerous", "+acl|setuser", "+acl|getuser", "+acl|whoami")


@dataclass(frozen=True)
class AclTarget:
    """Who the rules are for: a role, its worker name (workers), and where the input comes in."""

    role: str
    name: str | None = None
    input_stream: str = keys.DEFAULT_INPUT_STREAM
    input_channel: str = keys.DEFAULT_INPUT_CHANNEL
    primary: bool = False  # a worker that starts as primary (first deployment, --init-primary)


def password_rule(password: str) -> str:
    """The password as its SHA-256 (`#<hex>`): the clear text never reaches the server's config or a log."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def default_user(target: AclTarget) -> str:
    return f"harness-{target.name}" if target.role == "worker" and target.name else f"harness-{target.role}"


def _keys(kind: str, *patterns: str) -> list[str]:
    """Key rules (`~` or `%R~`) for the patterns, each as well in every partition: a partitioned
    deployment's keys carry their partition's hash tag (harness:{p3}:...), and the same users serve it."""
    return [f"{kind}{variant}" for pattern in patterns for variant in (pattern, keys.in_every_partition(pattern))]


def _plus(commands: tuple[str, ...]) -> list[str]:
    return [f"+{command}" for command in commands]


def _selector(tokens: list[str]) -> str:
    return "(" + " ".join(tokens) + ")"


def input_selector(worker: str, input_stream: str) -> str:
    keys.check_worker_name(worker)
    return _selector([*_keys("~", keys.literal_pattern(input_stream)), *_plus(WORKER_INPUT)])


def production_selector() -> str:
    """What only the primary may write: production (stream and channel) and the roles hash's watermark."""
    return _selector([*_keys("~", keys.literal_pattern(keys.PRODUCTION_STREAM), keys.literal_pattern(keys.ROLES_KEY)),
                      f"&{keys.literal_pattern(keys.PRODUCTION_CHANNEL)}", *_plus(PRODUCTION)])


def worker_selectors(worker: str, input_stream: str, primary: bool) -> list[str]:
    """The selectors the cutover rewrites (`clearselectors` first): the input, plus production if primary."""
    selectors = [input_selector(worker, input_stream)]
    return [*selectors, production_selector()] if primary else selectors


def _worker_rules(target: AclTarget) -> list[str]:
    if not target.name:
        raise ValueError("a worker's rules need its name (--name)")
    worker = keys.check_worker_name(target.name)
    own = _keys("~", *keys.worker_owned_patterns(worker))
    read_only = _keys("%R~", keys.literal_pattern(keys.ROLES_KEY), keys.literal_pattern(keys.control_key(worker)))
    return [*own, *read_only, f"&{keys.literal_pattern(target.input_channel)}",
            *_plus(CONNECTION + SCRIPTS + TRANSACTIONS + WORKER_OWN + MEMBERSHIP), "clearselectors",
            *worker_selectors(worker, target.input_stream, target.primary)]


def _producer_rules(target: AclTarget) -> list[str]:
    # The publish script declares the channel as a key, so the channel's name is a key pattern too.
    writes = (target.input_stream, target.input_channel, keys.PRODUCED_KEY, keys.PRODUCER_RUNS_KEY,
              keys.PRODUCED_LOST_KEY)
    return [*_keys("~", *(keys.literal_pattern(key) for key in writes)),
            *_keys("%R~", keys.every_worker(keys.reader_cursors_key)), f"&{keys.literal_pattern(target.input_channel)}",
            *_plus(CONNECTION + SCRIPTS + PRODUCER)]


def _comparator_rules(target: AclTarget) -> list[str]:
    own = (keys.literal_pattern(keys.COMPARATOR_STATE_KEY) + "*", keys.literal_pattern(keys.COMPARATOR_SUMMARY_KEY),
           keys.every_worker(keys.reader_cursors_key), keys.experiment_keys_pattern(),
           *keys.comparator_shard_patterns())
    reads = (keys.ROLES_KEY, keys.PRODUCTION_STREAM, keys.PRODUCED_KEY, keys.PRODUCED_LOST_KEY, target.input_stream,
             keys.EXPERIMENTS_KEY, keys.CURRENT_EXPERIMENT_KEY)
    results = _selector([*_keys("~", keys.every_worker(keys.results_stream)), *_plus(COMPARATOR_RESULTS)])
    return [*_keys("~", *own), *_keys("%R~", *(keys.literal_pattern(key) for key in reads)),
            *_plus(CONNECTION + SCRIPTS + TRANSACTIONS + COMPARATOR_OWN + MEMBERSHIP + SHARD_LEASES),
            "clearselectors", results]


def _operator_rules(_target: AclTarget) -> list[str]:
    return [f"~{keys.ALL_KEYS_PATTERN}", f"&{keys.ALL_KEYS_PATTERN}", *OPERATOR]


_RULES = {"producer": _producer_rules, "worker": _worker_rules, "comparator": _comparator_rules,
          "operator": _operator_rules}


def user_rules(target: AclTarget, password_sha256_rule: str) -> list[str]:
    """The `ACL SETUSER` rules after the user name: reset, then exactly what the role needs."""
    if target.role not in _RULES:
        raise ValueError(f"role {target.role!r}: choose one of {', '.join(ROLES)}")
    return ["reset", "on", password_sha256_rule, "resetchannels", "-@all", *_RULES[target.role](target)]


def as_setuser(user: str, rules: list[str]) -> str:
    return " ".join(["ACL", "SETUSER", user, *rules])


def as_aclfile(user: str, rules: list[str]) -> str:
    """One line of an ACL file (aclfile): the same rules; an ACL file starts from a reset user."""
    return " ".join(["user", user, *(rule for rule in rules if rule != "reset")])
