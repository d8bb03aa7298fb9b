"""The stub server itself: wire shapes, scripted and random faults, concurrency, process mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from stub_server import StubServer, hang, reset, status, truncate

STUB = Path(__file__).with_name("stub_server.py")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def test_default_replies_in_each_format(stub_server: StubServer) -> None:
    with httpx2.Client(base_url=stub_server.url) as http:
        openai = http.post("/v1/chat/completions", json=CHAT).json()
        anthropic = http.post("/v1/messages", json=CHAT).json()
        gemini = http.post(
            "/v1beta/models/gemini-x:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]},
        ).json()
    assert openai["choices"][0]["message"]["content"] == "stub reply to: hello there"
    assert openai["usage"]["total_tokens"] > openai["usage"]["completion_tokens"] > 0
    assert anthropic["content"] == [{"type": "text", "text": "stub reply to: hello there"}]
    assert anthropic["stop_reason"] == "end_turn"
    candidate = gemini["candidates"][0]
    assert candidate["content"]["parts"][0]["text"] == "stub reply to: hello there"
    assert candidate["finishReason"] == "STOP"
    assert gemini["modelVersion"] == "gemini-x"
    assert stub_server.request_count == stub_server.reply_count == 3
    assert [r.format for r in stub_server.requests] == ["openai", "anthropic", "gemini"]


def test_openai_stream_ends_with_usage_then_done(stub_server: StubServer) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx2.Client(base_url=stub_server.url) as http:
        text = http.post("/v1/chat/completions", json=body).text
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["usage"]["total_tokens"] > 0
    deltas = [json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-2]]
    assert "".join(deltas) == "stub reply to: hello there"


def test_anthropic_stream_event_sequence(stub_server: StubServer) -> None:
    with httpx2.Client(base_url=stub_server.url) as http:
        text = http.post("/v1/messages", json={**CHAT, "stream": True}).text
    names = [line[7:] for line in text.split("\n") if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") > 1


def test_script_is_consumed_in_order(stub_server: StubServer) -> None:
    stub_server.script(status(429, retry_after=0.5), status(503, "down"), reset())
    with httpx2.Client(base_url=stub_server.url) as http:
        limited = http.post("/v1/chat/completions", json=CHAT)
        down = http.post("/v1/messages", json=CHAT)
        with pytest.raises(httpx2.TransportError):
            http.post("/v1/messages", json=CHAT)
        ok = http.post("/v1/messages", json=CHAT)
    assert limited.status_code == 429
    assert limited.headers["retry-after-ms"] == "500"
    assert limited.headers["retry-after"] == "1"
    assert down.status_code == 503
    assert down.json()["error"] == {"type": "api_error", "message": "down"}
    assert ok.status_code == 200
    assert stub_server.fault_counts == {"status": 2, "reset": 1}
    assert stub_server.reply_count == 1


def test_hang_ends_when_the_client_leaves(stub_server: StubServer) -> None:
    stub_server.script(hang(30))
    with (
        httpx2.Client(base_url=stub_server.url, timeout=0.2) as http,
        pytest.raises(httpx2.ReadTimeout),
    ):
        http.post("/v1/messages", json=CHAT)
    with httpx2.Client(base_url=stub_server.url, timeout=5) as http:
        assert http.post("/v1/messages", json=CHAT).status_code == 200


def test_truncated_stream_has_no_end(stub_server: StubServer) -> None:
    stub_server.script(truncate(clean=True))
    with httpx2.Client(base_url=stub_server.url) as http:
        text = http.post("/v1/messages", json={**CHAT, "stream": True}).text
    assert "message_start" in text
    assert "message_stop" not in text
    assert stub_server.reply_count == 0


def test_random_faults_follow_the_seed() -> None:
    def kinds(seed: int) -> list[str]:
        with StubServer(fault_rate=0.5, seed=seed, hang_seconds=0.01) as server:
            with httpx2.Client(base_url=server.url) as http:
                for _ in range(40):
                    with contextlib.suppress(httpx2.TransportError):
                        http.post("/v1/chat/completions", json=CHAT)
            return [r.action for r in server.requests]

    first, again, other = kinds(7), kinds(7), kinds(8)
    assert first == again
    assert first != other
    assert 5 < sum(k != "reply" for k in first) < 35


async def _raw_exchange(port: int, i: int, repeat: int) -> list[str]:
    """``repeat`` requests on one kept-alive connection, with plain asyncio streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    texts = []
    try:
        for k in range(repeat):
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"{i}.{k}"}]})
            head_lines = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            head_lines += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            writer.write(f"{head_lines}\r\n{body}".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            length = int(head.split("content-length: ")[1].split("\r\n")[0])
            reply = json.loads(await reader.readexactly(length))
            texts.append(reply["choices"][0]["message"]["content"])
    finally:
        writer.close()
    return texts


async def test_hundreds_of_concurrent_kept_alive_connections(stub_server: StubServer) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(*(_raw_exchange(stub_server.port, i, 3) for i in range(300))), 60
    )
    assert results == [[f"stub reply to: {i}.{k}" for k in range(3)] for i in range(300)]
    assert stub_server.reply_count == 900
    assert stub_server.connections_opened == 300


def test_standalone_process_with_control_endpoints() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--print-port"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            http.post("/_stub/script", json=[{"kind": "status", "code": 500}])
            assert http.post("/v1/messages", json=CHAT).status_code == 500
            assert http.post("/v1/messages", json=CHAT).status_code == 200
            stats = http.get("/_stub/stats").json()
            recorded = http.get("/_stub/requests").json()
        assert stats["requests"] == 2
        assert stats["replies"] == 1
        assert stats["faults"] == {"status": 1}
        assert recorded[0]["body"] == CHAT
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


async def test_a_client_that_hangs_up_during_the_latency_gets_no_reply_counted() -> None:
    with StubServer(latency=0.3) as stub:
        host, port = stub.url.removeprefix("http://").rstrip("/").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        body = json.dumps(CHAT).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: stub\r\n"
            b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # the stub has the request and sleeps its latency
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.5)
        with httpx2.Client(base_url=stub.url) as http:  # and a client that waits: counted
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert stub.request_count == 2
        assert stub.reply_count == 1
