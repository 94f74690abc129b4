"""redis-py's errors, single server and cluster, become the harness's transport errors."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError, TryAgainError

from harness.transport.errors import (
    TransportError,
    TransportOutOfMemory,
    TransportReadOnly,
    TransportUnavailable,
)
from harness.transport.redis_errors import classify_redis_error, translated


@pytest.mark.parametrize(("error", "kind"), [
    (redis.ConnectionError("Connection refused"), TransportUnavailable),
    (ClusterDownError("The cluster is down"), TransportUnavailable),
    (TryAgainError("Multiple keys request during rehashing of slot"), TransportUnavailable),
    (SlotNotCoveredError("Command # 1 (XADD) requires a slot not covered by the cluster"), TransportUnavailable),
    (redis.ReadOnlyError("You can't write against a read only replica."), TransportReadOnly),
    (redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), TransportOutOfMemory),
])
def test_store_faults_are_classified_by_what_the_caller_should_do(error: Exception, kind: type) -> None:
    classified = classify_redis_error(error)
    assert type(classified) is kind


def test_a_cross_slot_refusal_is_a_store_error_with_its_reason_never_a_store_outage() -> None:
    with pytest.raises(TransportError, match=r"cluster refused: .*same slot") as caught, translated():
        raise RedisClusterException("EVALSHA - all keys must map to the same slot")
    assert not isinstance(caught.value, TransportUnavailable)


def test_a_bug_is_not_a_store_error() -> None:
    assert classify_redis_error(ValueError("not Redis")) is None
