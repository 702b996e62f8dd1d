"""Where open-autoglm keeps what it can rebuild: processed datasets, converted models."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "open-autoglm"


def cache_dir() -> Path:
    """`AUTOGLM_CACHE_DIR`, else the platform's user cache directory for open-autoglm."""
    env = os.environ.get("AUTOGLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))
