"""`harness demo`: the whole shadow deployment on a private Redis, with live progress."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli import options
from harness.transport.connection import redis_client


@click.command("demo")
@options.option("--redis-url", envvar="HARNESS_DEMO_REDIS_URL", default=None,
                help="Use this Redis (its state stays there for `report`/`export`); default: a private "
                     "redis-server on a unix socket, removed at the end.")
@options.option("--signals", envvar="HARNESS_DEMO_SIGNALS", default=5000, type=click.IntRange(1),
                help="Synthetic signals to send.")
@options.option("--rate", envvar="HARNESS_DEMO_RATE", default=None, type=click.FloatRange(0.001),
                help="Signals per second; default: as fast as possible.")
@options.option("--seed", envvar="HARNESS_SEED", default=0, type=int, help="Random seed of the signals.")
@options.option("--candidate-env", envvar="HARNESS_DEMO_CANDIDATE_ENV", multiple=True, default=(),
                callback=options.env_pairs,
                help="KEY=VALUE for the candidate's environment (repeatable), e.g. "
                     "HARNESS_CANDIDATE_CENTROID=mean.")
@options.option("--shape-share", envvar="HARNESS_DEMO_SHAPE_SHARE", default=0.0, type=click.FloatRange(0, 1),
                help="Share of signals whose faults differ only in waveform shape; try it with "
                     "--candidate-env HARNESS_CANDIDATE_FEATURES=shape.")
@options.option("--aa/--no-aa", envvar="HARNESS_DEMO_AA", default=False,
                help="Also run a second legacy instance, to measure the noise floor (A/A).")
@options.option("--cutover/--no-cutover", envvar="HARNESS_DEMO_CUTOVER", default=False,
                help="End the run with a cutover to the candidate, gated by --policy; the report shows the switch.")
@options.option("--policy", envvar="HARNESS_POLICY", default=Path("policies/default.toml"),
                type=click.Path(dir_okay=False, path_type=Path), help="Gate policy for --cutover.")
@options.option("--report-json", envvar="HARNESS_DEMO_REPORT_JSON", default=None,
                type=options.output_file, help="Also write the JSON report here.")
@options.option("--reset/--no-reset", envvar="HARNESS_DEMO_RESET", default=False,
                help="With --redis-url: delete existing harness:* keys first.")
def demo_command(redis_url: str | None, signals: int, rate: float | None, seed: int, candidate_env: dict[str, str],
                 shape_share: float, aa: bool, cutover: bool, policy: Path, report_json: Path | None,
                 reset: bool) -> None:
    """Run producer, legacy, candidate and comparator as processes, then print the report.

    With --cutover: the gated cutover's steps as they happen, more signals served by the new primary,
    and the headline of each experiment (before and after the switch)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.demo import DemoPlan, ensure_clean, run_demo
    from harness.embedded_redis import EmbeddedRedis
    from harness.report.render import render_terminal

    console = Console(stderr=True)
    if cutover and not policy.is_file():
        raise click.BadParameter(f"{policy} does not exist (run from the repository, or give --policy)",
                                 param_hint="--policy")
    server = EmbeddedRedis() if redis_url is None else None
    try:
        if server is not None:
            server.start()
            url = server.url
            console.print(f"[dim]private redis-server on {server.socket}[/dim]")
        else:
            url = redis_url or ""
            ensure_clean(redis_client(url), reset)
        plan = DemoPlan(url, signals, rate, seed, candidate_env, aa,
                        cutover_policy=policy.resolve() if cutover else None, shape_share=shape_share)
        console.print(f"[dim]worker logs in {plan.log_dir}[/dim]")
        columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[note]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            produced = bar.add_task("produced", total=signals, note="")
            # One bar per worker: a slow side is visibly behind, not "missing" (the join waits for it).
            workers = {name: bar.add_task(name, total=signals, note="") for name in ("legacy", "candidate")}
            matched = bar.add_task("matched", total=signals, note="")

            def show(progress: object) -> None:
                from harness.demo import Progress as DemoProgress

                assert isinstance(progress, DemoProgress)
                ari = "—" if progress.ari is None else f"{progress.ari:.4f}"
                bar.update(produced, completed=progress.produced)
                for name, task in workers.items():
                    done = progress.processed.get(name, 0)
                    bar.update(task, completed=done, note=f"{progress.produced - done:,} behind")
                bar.update(matched, completed=progress.matched, note=f"ARI {ari}  missing {progress.missing}")

            def say(line: str) -> None:  # the cutover's steps, as it prints them
                bar.console.print(line, highlight=False, soft_wrap=True)

            report = run_demo(plan, on_progress=show, say=say)
    except KeyboardInterrupt:
        raise click.ClickException("interrupted: every demo process was stopped") from None
    finally:
        if server is not None:
            server.stop()
    render_terminal(report, Console())
    if cutover:  # the story goes on after the switch: every experiment, and how it stands
        for experiment in report.get("experiments", []):
            state = "running" if experiment["running"] else "ended"
            Console().print(f"experiment {experiment['name']} ({experiment['control']} vs {experiment['candidate']}, "
                            f"{state}): {experiment['headline']}", highlight=False, soft_wrap=True)
    if report_json:
        report_json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {report_json}")


COMMANDS = [demo_command]
