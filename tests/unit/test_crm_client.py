"""The CRM client's resilience: retries on 5xx, connection errors and timeouts only; 4xx is an answer."""

from __future__ import annotations

import asyncio
from typing import List

import pytest
from aiohttp import web

from actions.crm import CRMClient, CRMNotFound, CRMRequestError, CRMUnavailable, RetryPolicy
from bot.redis_server import free_port


async def serve(responses: List[web.Response], delay_s: float = 0.0):
    """A real HTTP server answering each request with the next response; returns (runner, url, hits)."""
    hits: List[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.headers.get("X-API-Key", ""))
        if delay_s:
            await asyncio.sleep(delay_s)
        return responses[min(len(hits), len(responses)) - 1]

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", hits


def run(coro):
    return asyncio.run(coro)


def test_retries_5xx_then_succeeds():
    async def go():
        runner, url, hits = await serve([web.json_response({}, status=503), web.json_response({"customer_id": "C000001"})])
        client = CRMClient(url, "k", retry=RetryPolicy(retries=2, backoff_s=0.01))
        try:
            return await client.get_customer("C000001"), hits
        finally:
            await client.close()
            await runner.cleanup()

    body, hits = run(go())
    assert body == {"customer_id": "C000001"}
    assert hits == ["k", "k"]


def test_gives_up_after_retries_with_crm_unavailable():
    async def go():
        runner, url, hits = await serve([web.json_response({}, status=500)])
        client = CRMClient(url, "k", retry=RetryPolicy(retries=2, backoff_s=0.01))
        try:
            with pytest.raises(CRMUnavailable):
                await client.get_order("202611150023")
            return hits
        finally:
            await client.close()
            await runner.cleanup()

    assert len(run(go())) == 3


@pytest.mark.parametrize(("status", "kind"), [(404, CRMNotFound), (409, CRMRequestError), (400, CRMRequestError)])
def test_4xx_is_not_retried_and_carries_the_crm_error(status, kind):
    async def go():
        body = {"error": {"code": "not_allowed", "message": "订单已发货"}}
        runner, url, hits = await serve([web.json_response(body, status=status)])
        client = CRMClient(url, "k", retry=RetryPolicy(retries=2, backoff_s=0.01))
        try:
            with pytest.raises(kind) as caught:
                await client.get_order("202611150023")
            return caught.value, hits
        finally:
            await client.close()
            await runner.cleanup()

    error, hits = run(go())
    assert len(hits) == 1
    assert (error.status, error.code, error.message) == (status, "not_allowed", "订单已发货")


def test_timeout_is_retried_then_unavailable():
    async def go():
        runner, url, hits = await serve([web.json_response({})], delay_s=0.5)
        client = CRMClient(url, "k", timeout_s=0.1, retry=RetryPolicy(retries=1, backoff_s=0.01))
        try:
            with pytest.raises(CRMUnavailable):
                await client.get_customer("C000001")
            return hits
        finally:
            await client.close()
            await runner.cleanup()

    assert len(run(go())) == 2


def test_connection_refused_is_unavailable():
    async def go():
        client = CRMClient(f"http://127.0.0.1:{free_port()}", "k", retry=RetryPolicy(retries=1, backoff_s=0.01))
        try:
            with pytest.raises(CRMUnavailable):
                await client.get_customer("C000001")
        finally:
            await client.close()

    run(go())


def test_non_json_answer_is_unavailable():
    async def go():
        runner, url, _ = await serve([web.Response(text="<html>proxy error</html>", status=200)])
        client = CRMClient(url, "k", retry=RetryPolicy(retries=0))
        try:
            with pytest.raises(CRMUnavailable):
                await client.get_customer("C000001")
        finally:
            await client.close()
            await runner.cleanup()

    run(go())


def test_retry_delays_double():
    assert RetryPolicy(retries=3, backoff_s=0.1).delays() == [0.1, 0.2, 0.4]
