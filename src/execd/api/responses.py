"""Fast JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
