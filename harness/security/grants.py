"""Moves the production grant with the primary, on deployments whose workers run under ACL users.

HARNESS_ACL_USERS maps worker names to Redis users (`legacy=harness-legacy,candidate=harness-candidate`);
unset, ACLs are not in use and every function here does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import redis

from harness.errors import HarnessError
from harness.security.acl import worker_selectors
from harness.transport import keys

USERS_ENV = "HARNESS_ACL_USERS"


class AclError(RuntimeError, HarnessError):
    pass


def acl_users_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Worker name -> Redis user, from HARNESS_ACL_USERS; empty when ACLs are not in use."""
    users: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in environ.get(USERS_ENV, "").split(","))):
        worker, sep, user = (part.strip() for part in item.partition("="))
        if not sep or not worker or not user:
            raise AclError(f"{USERS_ENV}: {item!r} is not WORKER=USER (e.g. candidate=harness-candidate)")
        users[keys.check_worker_name(worker)] = user
    return users


def _set_selectors(client: redis.Redis, user: str, worker: str, primary: bool, input_stream: str) -> None:
    if not client.execute_command("ACL", "GETUSER", user):
        raise AclError(f"Redis ACL user {user!r} (worker {worker} in {USERS_ENV}) does not exist: "
                       f"create it first with `harness acl --role worker --name {worker}`")
    client.execute_command("ACL", "SETUSER", user, "clearselectors",
                           *worker_selectors(worker, input_stream, primary))


def grant_production(client: redis.Redis, worker: str, input_stream: str = keys.DEFAULT_INPUT_STREAM,
                     users: Mapping[str, str] | None = None) -> None:
    """Before a switch: the new primary's user may write production (its first commit as primary does)."""
    users = acl_users_from_env() if users is None else users
    if worker in users:
        _set_selectors(client, users[worker], worker, True, input_stream)


def revoke_production(client: redis.Redis, primary: str, input_stream: str = keys.DEFAULT_INPUT_STREAM,
                      users: Mapping[str, str] | None = None) -> None:
    """After a switch: every other worker's user loses production (the script already stopped it publishing)."""
    users = acl_users_from_env() if users is None else users
    for worker, user in users.items():
        if worker != primary:
            _set_selectors(client, user, worker, False, input_stream)
