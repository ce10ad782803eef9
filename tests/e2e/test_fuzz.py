"""Fuzzing the relay and the console API with generated requests (issue 11, "Done when").

Hypothesis generates a few thousand requests (paths, methods, headers, query strings and JSON
or raw bodies, mostly near-valid so they get past the first checks); derandomized, so CI sees
the same requests every run. Every answer must be below 500 (an upstream's own 5xx excepted:
the relay relays it), no service may log a traceback meanwhile, and both still serve after.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from services.relay.endpoints import BY_PATH
from services.web.app import _routes as web_routes
from tests.support.helpers import Console, create_user
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, new_customer, sdk

pytestmark = pytest.mark.e2e

RELAY_EXAMPLES = 1000
WEB_EXAMPLES = 1000
CONCURRENCY = 8
LOGS = ("relay", "web", "accounts", "billing", "tasks")
# Console paths that would end the fuzzing session itself or touch the whole system's state.
WEB_SKIPPED = re.compile(r"/api/user/logout|/api/setup|/api/option|/api/user/reset")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    body: bytes | None


# ------------------------------------------------------------------ strategies

ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24)
header_text = ascii_text.map(str.strip)  # HTTP/1.1 refuses a value with outer whitespace
any_text = st.text(max_size=24)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 1e308, 1.5]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=5,
)
urls = st.sampled_from(
    ["http://[::1", "http://127.0.0.1:99999/x.png", "http://0x7f.1/x.png", "ftp://x/y.png",
     "http://", "", "data:image/png;base64,@@@@", "data:,", "data:image/png;base64,iVBORw0KGgo=",
     "https://[fe80::1%25eth0]/x.png", "http://[::ffff:10.0.0.1]/a.png"]
) | any_text  # fmt: skip
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": scalars}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.one_of(
                st.fixed_dictionaries(
                    {"url": urls}, optional={"detail": st.sampled_from(["high", "low", "auto", 7])}
                ),
                urls,
                json_values,
            ),
        }
    ),
    json_values,
)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "assistant", "tool", "developer"])
                | any_text,
                "content": st.one_of(any_text, st.lists(parts, max_size=3), json_values),
            },
            optional={"name": scalars, "tool_calls": json_values},
        ),
        json_values,
    ),
    max_size=3,
)

gemini_parts = st.dictionaries(
    st.sampled_from(["text", "inlineData", "fileData", "functionCall", "functionResponse"]),
    json_values,
    max_size=2,
)
gemini_contents = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "model"]) | scalars,
            "parts": st.lists(gemini_parts, max_size=2) | json_values,
        }
    ),
    max_size=2,
)


def bodies(model: str) -> st.SearchStrategy[dict[str, Any]]:
    """Request bodies near a valid one, with any field wrong in type or size."""
    return st.fixed_dictionaries(
        {"model": st.sampled_from([model, model, ""]) | scalars},
        optional={
            "messages": messages | json_values,
            "contents": gemini_contents | json_values,
            "generationConfig": json_values,
            "requests": json_values,
            "input": any_text | st.lists(any_text, max_size=3) | messages | json_values,
            "prompt": any_text | json_values,
            "max_tokens": numbers | scalars,
            "max_completion_tokens": numbers,
            "max_output_tokens": numbers,
            "n": numbers | scalars,
            "stream": scalars,
            "stream_options": json_values,
            "tools": json_values,
            "temperature": numbers,
            "reasoning": json_values,
            "query": scalars,
            "documents": json_values,
            "size": any_text,
        },
    )


def encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def relay_calls(key: str, model: str, channel_id: int) -> st.SearchStrategy[Call]:
    paths = [f"/v1{path}" for path in BY_PATH] + [
        "/v1/models", f"/v1/models/{model}", "/hf/v1/chat/completions",
        "/v1/engines/x/embeddings", "/v1/nope", "/veloera", "/metrics", "/",
        f"/v1beta/models/{model}:generateContent", f"/v1/models/{model}:streamGenerateContent",
        f"/v1beta/models/{model}:batchEmbedContents", "/v1beta/models",
    ]  # fmt: skip
    auth = st.sampled_from(
        [f"Bearer sk-{key}", f"Bearer sk-{key}", f"Bearer sk-{key}-{channel_id}",
         f"Bearer sk-{key}-²", f"Bearer sk-{key}-99999999999999999999999", "Bearer", "",
         f"Bearer sk-{key}-0", f"sk-{key}"]
    ) | header_text  # fmt: skip
    content_types = st.sampled_from(
        ["application/json", "application/json", "multipart/form-data; boundary=x",
         "multipart/form-data", "application/x-www-form-urlencoded", "text/plain"]
    ) | header_text  # fmt: skip
    body = st.one_of(bodies(model).map(encoded), json_values.map(encoded), st.binary(max_size=64))
    return st.builds(
        lambda method, path, authorization, content_type, params, data: Call(
            method,
            path,
            {"Authorization": authorization, "Content-Type": content_type},
            params,
            data,
        ),
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]),
        st.sampled_from(paths),
        auth,
        content_types,
        st.dictionaries(ascii_text, ascii_text, max_size=2),
        body,
    )


def _fill(path: str) -> st.SearchStrategy[str]:
    """A concrete path for a route template: each `{param}` a number, word or oddity."""
    pieces = re.split(r"(\{[^}]+\})", path)
    values = st.sampled_from(["1", "0", "-1", "99999999999999999999", "abc", "%20", "1.5"])
    return st.tuples(*[values if p.startswith("{") else st.just(p) for p in pieces]).map("".join)


def web_calls(routes: list[tuple[str, str]]) -> st.SearchStrategy[Call]:
    body = st.one_of(
        st.dictionaries(st.sampled_from(["id", "name", "key", "quota", "page", "status", "models",
                                         "group", "username", "password", "value", "type"])
                        | any_text, json_values, max_size=5).map(encoded),
        json_values.map(encoded),
        st.binary(max_size=32),
    )  # fmt: skip
    route = st.sampled_from(routes).flatmap(lambda r: st.tuples(st.just(r[0]), _fill(r[1])))
    return st.builds(
        lambda method_path, params, data: Call(
            method_path[0], method_path[1], {"Content-Type": "application/json"}, params, data
        ),
        route,
        st.dictionaries(
            st.sampled_from(["p", "page_size", "keyword", "id", "type", "start_timestamp"])
            | ascii_text,
            ascii_text | st.sampled_from(["-1", "99999999999999999999", "1e5", ""]),
            max_size=3,
        ),
        body,
    )


def generated(strategy: st.SearchStrategy[Call], count: int) -> list[Call]:
    """`count` examples of `strategy`, the same ones every run."""
    found: list[Call] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(call: Call) -> None:
        found.append(call)

    collect()
    return found


# ------------------------------------------------------------------ running them


def log_sizes(work_dir: Path) -> dict[str, int]:
    return {name: _log(work_dir, name).stat().st_size for name in LOGS}


def _log(work_dir: Path, name: str) -> Path:
    return work_dir / f"{name}.log"


def new_log_text(work_dir: Path, since: dict[str, int]) -> dict[str, str]:
    text = {}
    for name, size in since.items():
        with _log(work_dir, name).open("rb") as log:
            log.seek(size)
            text[name] = log.read().decode(errors="replace")
    return text


async def send_all(
    client: httpx.AsyncClient, calls: list[Call], cookies_for: Callable[[Call], dict[str, str]]
) -> list[tuple[Call, int, str]]:
    """Every call, CONCURRENCY at a time: (call, status, body head) of each."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Call) -> tuple[Call, int, str]:
        headers = {  # bytes: `-²` goes as the single byte servers decode to `²`
            name.encode(): value.encode("latin-1")
            for name, value in {**call.headers, **cookies_for(call)}.items()
        }
        async with gate:
            try:
                answer = await client.request(
                    call.method, call.path, headers=headers, params=call.params, content=call.body
                )
            except httpx.TransportError:
                # A pooled keep-alive connection the server closed as it was reused: once more
                # on a new connection, where no answer at all counts as a server error.
                try:
                    async with httpx.AsyncClient(base_url=client.base_url, timeout=30.0) as fresh:
                        answer = await fresh.request(
                            call.method, call.path, headers=headers, params=call.params,
                            content=call.body,
                        )  # fmt: skip
                except httpx.TransportError as exc:
                    return call, 599, f"no answer: {exc!r}"
            return call, answer.status_code, answer.text[:300]

    return await asyncio.gather(*(one(call) for call in calls))


def server_errors(results: list[tuple[Call, int, str]]) -> list[str]:
    """5xx answers the system itself is to blame for (a relayed upstream 5xx is not)."""
    bad = []
    for call, status, text in results:
        if status < 500 or '"type":"upstream_error"' in text or "upstream_" in text:
            continue
        bad.append(f"{status} {call.method} {call.path} {call.headers} {call.body!r:.200}: {text}")
    return bad


async def test_fuzzed_relay_and_console_requests_never_get_a_5xx(
    world: World, infra: Infra
) -> None:
    customer = await new_customer(world, quota=10**12)
    console, _ = await create_user(world.root, quota=1000)
    world.consoles.append(console)
    routes = [
        (method, route.path)
        for route in web_routes()
        if isinstance(route, Route) and not WEB_SKIPPED.search(route.path)
        for method in sorted(route.methods or ()) if method != "HEAD"
    ]  # fmt: skip
    relay_strategy = relay_calls(customer.key, customer.model, customer.channel_id)
    relay = generated(relay_strategy, RELAY_EXAMPLES)
    before = log_sizes(infra.work_dir)

    # The console's requests are generated (a thread) while the relay's are being sent.
    web_generation = asyncio.create_task(
        asyncio.to_thread(generated, web_calls(routes), WEB_EXAMPLES)
    )
    async with httpx.AsyncClient(base_url=world.relay_url, timeout=30.0) as client:
        relay_results = await send_all(client, relay, lambda call: {})
    web = await web_generation
    async with httpx.AsyncClient(base_url=world.web_url, timeout=30.0) as client:
        web_results = await send_all(client, web, _web_identity(world.root, console))

    problems = server_errors(relay_results) + server_errors(web_results)
    assert not problems, "\n".join(problems[:20])
    logs = new_log_text(infra.work_dir, before)
    tracebacks = {name: text for name, text in logs.items() if "Traceback" in text}
    assert not tracebacks, {name: text[-3000:] for name, text in tracebacks.items()}
    await _still_serving(world, customer)


def _web_identity(root: Console, user: Console) -> Callable[[Call], dict[str, str]]:
    """Root reads (GET) as root; every other method goes as a common user (so the fuzzer
    cannot rename root or delete other tests' channels); some calls go anonymous."""
    root_cookie = "; ".join(f"{k}={v}" for k, v in root.client.cookies.items())
    user_cookie = "; ".join(f"{k}={v}" for k, v in user.client.cookies.items())

    def identity(call: Call) -> dict[str, str]:
        if len(call.path) % 5 == 0:
            return {}
        if call.method == "GET":
            return {"Cookie": root_cookie, "Veloera-User": str(root.user_id)}
        return {"Cookie": user_cookie, "Veloera-User": str(user.user_id)}

    return identity


async def _still_serving(world: World, customer: Customer) -> None:
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    status = await world.root.call("GET", "/api/status")
    assert status is not None
