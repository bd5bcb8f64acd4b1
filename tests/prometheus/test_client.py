"""The operator's Prometheus client against a real Prometheus scraping itself."""

from __future__ import annotations

import math
from typing import Any

import pytest
from aiohttp import web

from modelops.controller import prometheus as prom
from promkit import Prometheus, free_port


@pytest.fixture
def scraping_itself(prometheus: Prometheus) -> Prometheus:
    prometheus.set_targets([{"targets": [f"127.0.0.1:{prometheus.port}"], "labels": {"role": "self"}}])
    prometheus.wait_scraped(1)
    return prometheus


async def test_vector_carries_labels_and_values(scraping_itself: Prometheus) -> None:
    samples = await prom.query(scraping_itself.url, 'up{job="modelops"}')
    assert len(samples) == 1
    assert samples[0].value == 1.0
    assert samples[0].labels["role"] == "self"
    assert samples[0].labels["instance"] == f"127.0.0.1:{scraping_itself.port}"


async def test_scalar_and_single_value(scraping_itself: Prometheus) -> None:
    assert await prom.query_one(scraping_itself.url, "scalar(vector(2.5))") == 2.5
    assert await prom.query_one(scraping_itself.url, 'sum(up{job="modelops"})') == 1.0


async def test_no_data_is_none_not_an_error(scraping_itself: Prometheus) -> None:
    assert await prom.query(scraping_itself.url, 'up{job="nothing-here"}') == []
    assert await prom.query_one(scraping_itself.url, 'sum(up{job="nothing-here"})') is None
    # 0/0 is NaN in PromQL: no data either, never a number that passes a check.
    assert await prom.query_one(scraping_itself.url, "vector(0) / vector(0)") is None
    samples = await prom.query(scraping_itself.url, "vector(0) / vector(0)")
    assert math.isnan(samples[0].value)
    assert not samples[0].finite


async def test_bad_query_is_an_error_naming_it(scraping_itself: Prometheus) -> None:
    with pytest.raises(prom.PrometheusError, match="query failed") as raised:
        await prom.query(scraping_itself.url, "sum(")
    assert not isinstance(raised.value, prom.UnreachableError)  # it answered: the address is fine


async def test_several_series_for_one_value_is_an_error(scraping_itself: Prometheus) -> None:
    with pytest.raises(prom.PrometheusError, match="expected one series"):
        await prom.query_one(scraping_itself.url, 'label_replace(vector(1), "a", "x", "", "") or vector(2)')


async def test_unreachable_is_an_error() -> None:
    with pytest.raises(prom.UnreachableError, match="ClientConnectorError"):
        await prom.query(f"http://127.0.0.1:{free_port()}", "up", deadline=2)


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "not a number"]}]},
        {"resultType": "vector", "result": [{"metric": {}}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": 3}]},
        {"resultType": "vector", "result": ["x"]},
        {"resultType": "scalar", "result": [1.0, None]},
        {"resultType": "matrix", "result": []},
    ],
)
async def test_a_malformed_answer_is_an_error_not_a_crash(data: dict[str, Any]) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": data})

    app = web.Application()
    app.router.add_post("/api/v1/query", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        with pytest.raises(prom.PrometheusError) as raised:
            await prom.query(f"http://127.0.0.1:{runner.addresses[0][1]}", "up")
        assert not isinstance(raised.value, prom.UnreachableError)
    finally:
        await runner.cleanup()


async def test_stopped_then_started_again(scraping_itself: Prometheus) -> None:
    scraping_itself.stop()
    with pytest.raises(prom.PrometheusError):
        await prom.query(scraping_itself.url, "up", deadline=2)
    scraping_itself.start()
    assert await prom.query_one(scraping_itself.url, "scalar(vector(1))") == 1.0
