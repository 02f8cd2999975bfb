"""`/docs`: the API reference, rendered in the browser from /openapi.json.

FastAPI's own pages load Swagger UI or ReDoc from a CDN, and this project loads nothing from
outside at run time; FastAPI ships no copy of those assets. So this page is self-contained: a
small shell here and a script served beside it (static/docs.js).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_SCRIPT = files("skeldir.adapters.api.static").joinpath("docs.js").read_bytes()
# Only this page's own script and styles run here, whatever a response holds.
_POLICY = (
    "default-src 'self'; style-src 'unsafe-inline'; img-src 'none'; object-src 'none';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# The page takes an API key: no other site may frame it (clickjacking), and no browser may
# guess a type other than the one given.
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Skeldir API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; }
code, pre { font: 12px ui-monospace, monospace; }
pre { background: #f6f6f6; padding: .6em; overflow: auto; max-height: 30em; }
.operation { border: 1px solid #ddd; border-radius: 4px; margin: .4em 0; padding: .3em .6em; }
.operation > summary { cursor: pointer; }
.method { display: inline-block; width: 4.5em; font-weight: 600; }
.get { color: #1565c0; } .post { color: #2e7d32; } .delete { color: #c62828; }
.summary { margin-left: 1em; color: #555; }
table { border-collapse: collapse; margin: .5em 0; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: .25em .5em; text-align: left; }
td input { display: block; margin-top: .2em; width: 95%; }
.try { margin-top: .5em; }
</style>
</head>
<body>
<h1 id="title">Skeldir API</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a>.</p>
<form id="key-form"><label>API key for trying requests (kept in this tab only):
<input id="api-key" type="password" size="50" autocomplete="off"></label></form>
<div id="operations"></div>
<script src="/docs.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get("/docs.js")
async def docs_script() -> Response:
    return Response(_SCRIPT, media_type="application/javascript", headers=_HEADERS)
