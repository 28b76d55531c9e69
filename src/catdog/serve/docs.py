"""`/docs` without the internet: Swagger UI from the `fastapi-swagger` package, served by the app itself.

FastAPI's own /docs page loads Swagger UI from a CDN, so it is blank on an offline machine (or a
phone app's test server). `fastapi-swagger` (MIT; Swagger UI 5 itself is Apache-2.0, ~1.9 MB) ships the
bundle inside the wheel; these routes serve it under /docs/assets/ and point the page there with
relative URLs. ReDoc (another CDN script) is switched off in create_app.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
          "favicon-32x32.png": "image/png"}
# Swagger UI's online spec validator badge would call out to a public URL: off.
UI_PARAMETERS = {"validatorUrl": None, "tryItOutEnabled": True, "displayRequestDuration": True}


def add_offline_docs(app: FastAPI, title: str) -> None:
    """GET /docs (the Swagger UI page) and GET /docs/assets/<file>, all from the installed package."""
    files = resources.files("fastapi_swagger.resources")
    assets = {name: (files / name).read_bytes() for name in ASSETS}  # read once: 1.9 MB, served often

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="openapi.json", title=f"{title} - API docs",
                                   swagger_js_url="docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="docs/assets/swagger-ui.css",
                                   swagger_favicon_url="docs/assets/favicon-32x32.png",
                                   swagger_ui_parameters=UI_PARAMETERS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> Response:
        if name not in assets:
            return Response(status_code=404)
        return Response(assets[name], media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})


# The handlers read the request themselves (streamed, with size limits, raw bodies allowed), so FastAPI
# cannot infer the bodies from parameters; they are declared here for /openapi.json and the /docs form.
_IMAGE = {"type": "string", "format": "binary", "description": "an image file: JPEG, PNG, GIF, BMP or WebP"}
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": _IMAGE}}},
    "image/*": {"schema": _IMAGE},
}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": _IMAGE, "description": "several images, one result each, in order"}}}},
}}}
