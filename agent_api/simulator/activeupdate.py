"""A stand-in for the vendor's ActiveUpdate server: the components' files, in the server's own format.

Clients with "Clients download updates from the ActiveUpdate server" fall back
to it when they cannot reach the update server or the server's copy of a file
is unavailable. It publishes what the server holds (the same files, so the
same SHA-256 hashes): ``GET /manifest`` lists each component's latest version
like the agent API's manifest (full files only: the vendor offers no
incremental built for one client), and
``GET /components/<slug>/versions/<label>/full`` serves the file.

The demo runs it as ``manage.py activeupdate_feed``; tests run it in a thread
with ``ActiveUpdateFeedThread``. It only ever listens on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from django.conf import settings

from updates_app.components import latest_versions
from updates_app.version_labels import version_label


@dataclass(frozen=True)
class FeedFile:
    slug: str
    name: str
    kind: str
    label: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def feed_contents() -> dict[str, FeedFile]:
    """The latest version of every component the server holds, read from its storage."""
    files = {}
    for version in latest_versions():
        path = Path(settings.COMPONENT_STORAGE_DIR) / version.file_path
        if not version.file_path or not path.exists():
            continue
        component = version.component
        files[component.slug] = FeedFile(
            slug=component.slug,
            name=component.name,
            kind=component.kind,
            label=version_label(version.number),
            data=path.read_bytes(),
        )
    return files


class ActiveUpdateFeed:
    """The feed's HTTP application; ``contents`` may be replaced while it runs (a new vendor release)."""

    def __init__(self, contents: dict[str, FeedFile]) -> None:
        self.contents = contents
        self.requests: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/manifest", self.manifest)
        app.router.add_get("/components/{slug}/versions/{label}/full", self.file)
        return app

    async def manifest(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        items = [
            {
                "component": f.slug,
                "name": f.name,
                "kind": f.kind,
                "latest_version": f.label,
                "sha256": f.sha256,
                "size": len(f.data),
                "full": {
                    "url": f"/components/{f.slug}/versions/{f.label}/full",
                    "size": len(f.data),
                    "sha256": f.sha256,
                },
                "incremental": None,
            }
            for f in self.contents.values()
        ]
        return web.json_response({"components": items})

    async def file(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        found = self.contents.get(request.match_info["slug"])
        if found is None or found.label != request.match_info["label"]:
            return web.json_response({"code": "not_found", "message": "No such file."}, status=404)
        return web.Response(body=found.data, content_type="application/octet-stream")


class ActiveUpdateFeedThread:
    """``with ActiveUpdateFeedThread(contents) as feed:`` serves on 127.0.0.1 in a thread; ``feed.url``."""

    def __init__(self, contents: dict[str, FeedFile], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.feed = ActiveUpdateFeed(contents)
        self.host, self.port = host, port
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="activeupdate-feed", daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> str:
        self._runner = web.AppRunner(self.feed.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        port = self._runner.addresses[0][1]
        return f"http://{self.host}:{port}"

    def __enter__(self) -> ActiveUpdateFeedThread:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
