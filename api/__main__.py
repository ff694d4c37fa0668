"""`python -m api`: serve the API with uvicorn, logging through structlog."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from runtime.settings import get_settings


def main() -> None:
    settings = get_settings()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our structlog handlers
        access_log=False,  # RequestContextMiddleware logs each request once, with its id
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
