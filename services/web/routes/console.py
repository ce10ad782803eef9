"""Read-only endpoints the console pages need: admin-edited texts, model lists and groups.

They mirror upstream `controller/misc.go` (GetNotice, GetAbout, GetHomePageContent),
`controller/model.go` (DashboardListModels), `controller/user.go` (GetUserModels) and
`controller/group.go` (GetGroups).
"""

from __future__ import annotations

from collections import defaultdict

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, Call, endpoint
from services.web.options_cache import options_cache
from services.web.routes.pricing import PAGE_SIZE, enabled_models
from services.web.routes.user_self import group_ratios

MAX_CHANNEL_PAGES = 100


async def _option(call: Call, key: str) -> str:
    return (await options_cache(call.request).get(call.deps)).get(key, "")


@endpoint()
async def notice(call: Call) -> str:
    """`Notice` (Markdown): the banner every page shows while it is set."""
    return await _option(call, "Notice")


@endpoint()
async def about(call: Call) -> str:
    """`About` (Markdown, HTML or a URL shown in a frame)."""
    return await _option(call, "About")


@endpoint()
async def home_page_content(call: Call) -> str:
    """`HomePageContent` (Markdown, HTML, a full HTML document or a URL)."""
    return await _option(call, "HomePageContent")


@endpoint(ROLE_COMMON)
async def user_models(call: Call) -> list[str]:
    """Models an enabled channel serves to the caller's group (`default` when unset)."""
    group = call.user.group or "default"
    groups_of = await enabled_models(call)
    return sorted(model for model, groups in groups_of.items() if group in groups)


async def _models_by_type(call: Call) -> dict[int, set[str]]:
    deps = call.deps
    by_type: dict[int, set[str]] = defaultdict(set)
    for page in range(1, MAX_CHANNEL_PAGES + 1):
        reply = await deps.accounts.ListChannels(
            accounts_pb2.ListChannelsRequest(page=page, page_size=PAGE_SIZE),
            timeout=deps.timeout,
        )
        for channel in reply.channels:
            by_type[int(channel.type)].update(channel.models)
        if len(reply.channels) < PAGE_SIZE or page * PAGE_SIZE >= reply.total:
            break
    return by_type


@endpoint(ROLE_ADMIN)
async def dashboard_models(call: Call) -> dict[str, list[str]]:
    """Channel type -> the models configured on channels of that type (the channel form's
    model suggestions). Upstream lists each adaptor's built-in models instead; here the
    configured channels are the only source of model names."""
    by_type = await _models_by_type(call)
    return {str(kind): sorted(models) for kind, models in sorted(by_type.items())}


@endpoint(ROLE_ADMIN)
async def groups(call: Call) -> list[str]:
    """Every group name that has a price ratio (GroupRatio)."""
    return sorted(await group_ratios(call))


ROUTES = [
    Route("/api/notice", notice, methods=["GET"]),
    Route("/api/about", about, methods=["GET"]),
    Route("/api/home_page_content", home_page_content, methods=["GET"]),
    Route("/api/models", dashboard_models, methods=["GET"]),
    Route("/api/user/models", user_models, methods=["GET"]),
    Route("/api/group/", groups, methods=["GET"]),
]
