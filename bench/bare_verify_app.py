"""The HTTP ceiling of ingest: a bare FastAPI app that only verifies Shopify signatures.

    .venv/bin/python bench/bare_verify_app.py --port 61234 --secret S

Any POST reads the raw body, computes its HMAC-SHA256 with the secret (base64, as Shopify
sends it in X-Shopify-Hmac-Sha256) and answers 200 when it matches, 401 when not: no routing
beyond that, no middleware, no database. GET /healthz answers 200 (ready).

It is served by `skeldir api` itself with only the app swapped: the same uvicorn, loop, HTTP
protocol class, single process, logging and access-log setting as the real API, by construction
rather than by a copy of those settings that could drift (bench/ingest.py starts it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac

from fastapi import FastAPI, Request, Response

from skeldir.adapters import app as application
from skeldir.adapters.cli import services

SIGNATURE_HEADER = "x-shopify-hmac-sha256"


def create_bare_app(secret: str) -> FastAPI:
    key = secret.encode()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.post("/{path:path}")
    async def verify(request: Request) -> Response:
        body = await request.body()
        expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
        given = request.headers.get(SIGNATURE_HEADER, "").encode()
        if hmac.compare_digest(expected, given):
            return Response(b'{"verified":true}', media_type="application/json")
        return Response(b'{"verified":false}', status_code=401, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="the secret the benchmark signs with")
    args = parser.parse_args()
    bare = create_bare_app(args.secret)
    # `skeldir api` imports create_app from skeldir.adapters.app when it runs and builds its
    # app with it: hand it this one instead.
    application.create_app = lambda _settings: bare
    services.api.main(
        ["--host", args.host, "--port", str(args.port)], prog_name="skeldir api (bare verify)"
    )


if __name__ == "__main__":
    main()
