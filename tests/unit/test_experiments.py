"""Experiments: the registry in a real Redis, the start filter, and a comparator that follows the current one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from harness import experiments
from harness.cli.main import cli
from harness.comparator.scope import StartFilter
from harness.comparator.service import ComparatorService, ComparatorSettings, default_feeds, live_report
from harness.contracts import SignalClustered, encode_clustered
from harness.experiments import ExperimentError, ExperimentUsageError
from harness.transport import keys


def result(worker: str, number: int, entry: str, label: str = "a") -> bytes:
    return encode_clustered(SignalClustered(
        signal_id=f"s{number}", worker=worker, model_version="test", outcome="clustered", label=label,
        is_new_cluster=False, entered_at_ms=1000.0, published_at_ms=1010.0, processing_ms=1.0, device_id="dev-1",
        input_entry_id=entry))


def send(client: redis.Redis, numbers: range, workers: tuple[str, ...]) -> list[str]:
    """Input entries for these signals, and each worker's result for each: as workers in step would write them."""
    entries = [client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: b"x"}).decode() for _ in numbers]
    for worker in workers:
        for number, entry in zip(numbers, entries, strict=True):
            client.xadd(keys.results_stream(worker), {keys.PAYLOAD_FIELD: result(worker, number, entry)})
    return entries


def run_until_idle(service: ComparatorService) -> None:
    while service.poll_once():
        pass
    service.checkpoint()


def follower(client: redis.Redis) -> ComparatorService:
    service = ComparatorService(client, ComparatorSettings(feeds=default_feeds(), block_ms=10, follow=True))
    service.rewind()
    return service


def test_without_experiments_the_implicit_default_uses_the_comparators_keys(redis_client: redis.Redis) -> None:
    current = experiments.current(redis_client)
    assert current is not None and current.implicit
    assert (current.name, current.control, current.candidate) == ("default", "legacy", "candidate")
    assert (current.state_key, current.summary_key, current.group()) == (
        keys.COMPARATOR_STATE_KEY, keys.COMPARATOR_SUMMARY_KEY, "comparator")


def test_starting_an_experiment_ends_the_current_one_and_starts_after_the_input_end(redis_client: redis.Redis) -> None:
    entries = send(redis_client, range(3), ("legacy", "candidate"))
    redis_client.hset(keys.COMPARATOR_SUMMARY_KEY, mapping={"control": "legacy", "candidate": "candidate"})
    started, ended = experiments.start(redis_client, "v2", "candidate", "candidate-v2")
    assert ended is not None and ended.name == "default" and not ended.running
    assert started.start_entry == entries[-1]
    assert started.results_start(keys.results_stream("candidate")) == \
        redis_client.xrevrange(keys.results_stream("candidate"), count=1)[0][0].decode()
    assert started.results_start(keys.results_stream("candidate-v2")) == "0", "no results yet: from the start"
    assert experiments.current(redis_client) == started
    assert [exp.name for exp in experiments.load_all(redis_client)] == ["default", "v2"]
    assert experiments.resolve(redis_client, "default").end_reason == "experiment v2 started"


@pytest.mark.parametrize(("name", "control", "candidate", "error"), [
    ("default", "legacy", "candidate", ExperimentError), ("a:b", "legacy", "candidate", ExperimentUsageError),
    ("same", "legacy", "legacy", ExperimentUsageError), ("bad-worker", "leg:acy", "candidate", ExperimentUsageError)])
def test_an_experiment_that_cannot_be_started_is_refused(redis_client: redis.Redis, name: str, control: str,
                                                         candidate: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        experiments.start(redis_client, name, control, candidate)
    assert experiments.current(redis_client) is not None and experiments.current(redis_client).implicit  # type: ignore[union-attr]


def test_a_switch_starts_one_experiment_per_epoch_however_often_it_is_rerun(redis_client: redis.Redis) -> None:
    first = experiments.on_switch(redis_client, "candidate", "legacy", 2, "cutover")
    again = experiments.on_switch(redis_client, "candidate", "legacy", 2, "cutover")
    assert first == again and first.name == "candidate-vs-legacy-e2"
    assert (first.control, first.candidate, first.started_by) == ("candidate", "legacy", "cutover to candidate")
    back = experiments.on_switch(redis_client, "legacy", "candidate", 3, "rollback")
    assert experiments.current(redis_client) == back
    assert experiments.resolve(redis_client, first.name).end_reason == "rollback to legacy (epoch 3)"


def test_retiring_a_side_ends_the_experiment_and_retiring_another_worker_does_not(redis_client: redis.Redis) -> None:
    experiments.start(redis_client, "v2", "candidate", "candidate-v2")
    assert experiments.on_retire(redis_client, "legacy") is None
    ended = experiments.on_retire(redis_client, "candidate-v2")
    assert ended is not None and ended.end_reason == "candidate-v2 retired"
    assert experiments.current(redis_client) is None, "nothing runs: a comparator idles"
    assert experiments.resolve(redis_client).name == "v2", "the latest still reports"


def test_the_start_filter_drops_results_of_entries_up_to_the_start_only() -> None:
    keep = StartFilter("100-0")
    rows = [{"id": "x", "entry": "100-0"}, {"id": "y", "entry": "100-1"}, {"id": "z"}]
    assert [row["id"] for row in keep.keep("s", rows)] == ["y", "z"], "an unplaced result is the state's to reject"
    assert keep.keep("s", [{"id": "late", "entry": "99-0"}]) == [], "still before the start: dropped"
    assert keep.keep("s", [{"id": "w", "entry": "101-0"}, {"id": "v", "entry": "99-0"}])[0]["id"] == "w"


def test_a_following_comparator_switches_and_keeps_the_final_report(redis_client: redis.Redis) -> None:
    send(redis_client, range(0, 50), ("legacy", "candidate"))
    service = follower(redis_client)
    run_until_idle(service)
    assert service.experiment == "default" and service.state.report()["counts"]["matched"] == 50

    experiments.on_switch(redis_client, "candidate", "legacy", 2, "cutover")
    send(redis_client, range(50, 80), ("legacy", "candidate"))
    service.follow()
    run_until_idle(service)
    assert service.experiment == "candidate-vs-legacy-e2"
    assert service.state.report()["counts"]["matched"] == 30, "only what came after its start"
    final = live_report(redis_client, "default")
    assert final is not None and final["counts"]["matched"] == 50 and final["experiment"]["end_reason"]
    assert redis_client.exists(keys.experiment_report_key("default"))
    groups = {g["name"].decode() for g in redis_client.xinfo_groups(keys.results_stream("legacy"))}
    assert groups == {"comparator:candidate-vs-legacy-e2"}, "the ended experiment's group is gone"

    experiments.stop(redis_client)
    service.follow()
    assert service.experiment is None and service.poll_once() == 0


def test_report_and_export_agree_on_an_experiments_pairs(redis_client: redis.Redis, redis_url: str,
                                                          tmp_path: Path) -> None:
    send(redis_client, range(0, 20), ("legacy", "candidate"))
    experiments.start(redis_client, "v2", "candidate", "candidate-v2")
    send(redis_client, range(20, 45), ("candidate", "candidate-v2"))
    send(redis_client, range(45, 50), ("candidate",))  # not yet answered by candidate-v2: pending, not a pair
    run_until_idle(follower(redis_client))
    runner = CliRunner()
    shown = runner.invoke(cli, ["report", "--redis-url", redis_url, "--format", "json", "--experiment", "v2"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["counts"]["matched"] == 25
    assert report["sides"] == {"control": "candidate", "candidate": "candidate-v2"}
    pairs = tmp_path / "pairs.csv"
    exported = runner.invoke(cli, ["export", "--redis-url", redis_url, "--pairs", str(pairs), "--experiment", "v2"])
    assert exported.exit_code == 0, exported.output
    assert len(pd.read_csv(pairs)) == report["counts"]["matched"]
    unknown = runner.invoke(cli, ["report", "--redis-url", redis_url, "--experiment", "nosuch"])
    assert unknown.exit_code == 1 and "no experiment 'nosuch'" in unknown.output


def test_the_experiment_commands_start_list_show_and_stop(redis_url: str, redis_client: redis.Redis) -> None:
    runner = CliRunner()
    started = runner.invoke(cli, ["experiment", "start", "v2", "--redis-url", redis_url, "--control", "candidate",
                                  "--candidate", "candidate-v2"])
    assert started.exit_code == 0, started.output
    assert "started experiment v2: candidate (control) vs candidate-v2 (candidate)" in started.output
    listed = runner.invoke(cli, ["experiment", "list", "--redis-url", redis_url])
    assert listed.output.splitlines()[-1].startswith("* v2: candidate vs candidate-v2; started ")
    shown = runner.invoke(cli, ["experiment", "show", "--redis-url", redis_url])
    assert "nothing compared yet" in shown.output
    stopped = runner.invoke(cli, ["experiment", "stop", "--redis-url", redis_url])
    assert stopped.exit_code == 0 and "ended experiment v2" in stopped.output
    again = runner.invoke(cli, ["experiment", "stop", "--redis-url", redis_url])
    assert again.exit_code == 1 and "no experiment is running" in again.output
    bad = runner.invoke(cli, ["experiment", "start", "a:b", "--redis-url", redis_url, "--control", "x",
                              "--candidate", "y"])
    assert bad.exit_code == 2
