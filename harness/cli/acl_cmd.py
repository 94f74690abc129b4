"""`harness acl`: the least-privilege Redis ACL user of one role, as ACL SETUSER or an ACL file line."""

from __future__ import annotations

import os

import click

from harness.cli import options
from harness.errors import ConfigurationError
from harness.security.acl import ROLES, AclTarget, as_aclfile, as_setuser, default_user, password_rule, user_rules

PASSWORD_ENV = "HARNESS_ACL_PASSWORD"


@click.command("acl")
@options.option("--role", envvar="HARNESS_ACL_ROLE", required=True, type=click.Choice(ROLES),
                help="Who the user is for.")
@options.option("--name", envvar="HARNESS_ACL_WORKER", default=None,
                help="The worker's name (role worker), e.g. candidate.")
@options.option("--user", envvar="HARNESS_ACL_USER", default=None,
                help="The Redis user name; default harness-NAME for a worker, harness-ROLE otherwise.")
@options.option("--primary", envvar="HARNESS_ACL_PRIMARY", is_flag=True,
                help="A worker that starts as primary (first deployment): it may write production.")
@options.option("--password-env", envvar="HARNESS_ACL_PASSWORD_ENV", default=PASSWORD_ENV,
                help="The environment variable holding the user's password; only its SHA-256 is printed.")
@options.input_stream
@options.input_channel
@options.option("--format", "output_format", envvar="HARNESS_ACL_FORMAT", default="setuser",
                type=click.Choice(["setuser", "aclfile"]),
                help="setuser: an ACL SETUSER line for redis-cli; aclfile: a line of a Redis ACL file.")
def acl_command(role: str, name: str | None, user: str | None, primary: bool, password_env: str,
                input_stream: str, channel: str, output_format: str) -> None:
    """Print the least-privilege Redis ACL user of one role (pipe it into redis-cli as the admin).

    The password is read from the environment and printed only as its SHA-256. Workers get write
    on production only as primary; `harness cutover` moves that grant (HARNESS_ACL_USERS).
    See docs/security.md.
    """
    password = os.environ.get(password_env)
    if not password:
        raise ConfigurationError(f"no password: set {password_env} (or name another variable with --password-env)")
    if role == "worker" and not name:
        raise ConfigurationError("--role worker needs --name (the worker's name, e.g. candidate)")
    target = AclTarget(role=role, name=name if role == "worker" else None, input_stream=input_stream,
                       input_channel=channel, primary=primary and role == "worker")
    try:
        rules = user_rules(target, password_rule(password))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    render = as_aclfile if output_format == "aclfile" else as_setuser
    click.echo(render(user or default_user(target), rules))


COMMANDS = [acl_command]
