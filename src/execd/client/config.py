"""Where the SDK and the CLI find the server and the token.

In order: arguments, then EXECD_URL / EXECD_TOKEN, then the file `execd login` writes
(`$EXECD_CONFIG`, else `$XDG_CONFIG_HOME/execd/config.json`, else
`~/.config/execd/config.json`), then `http://127.0.0.1:8080` (what `make run` serves)
without a token. The file's token is used only with the file's URL, so a token is never
sent to a server it was not issued for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from execd.client.errors import ConfigurationError

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    #: Without a token: the URL of a saved login for another server (its token is not
    #: sent to this one).
    saved_url: str | None = None


def config_path() -> Path:
    explicit = os.environ.get("EXECD_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "execd" / "config.json"


def load() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def save(url: str, token: str) -> Path:
    """Write the URL and token, readable by the user only (0600, directory 0700)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)  # never write through a link planted there
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"url": url, "token": token}, out, indent=2)
        out.write("\n")
    os.chmod(temporary, 0o600)  # in case it existed with a wider mode
    temporary.replace(path)
    return path


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the server URL must start with http:// or https://: {url!r}")
    return url


def resolve(url: str | None = None, token: str | None = None) -> Target:
    """The URL and token to use; the saved file is read only if something is missing."""
    url = url or os.environ.get("EXECD_URL") or None
    token = token or os.environ.get("EXECD_TOKEN") or None
    if url is not None and token is not None:
        return Target(normalise_url(url), token)
    saved = load()
    chosen = normalise_url(url or saved.get("url") or DEFAULT_URL)
    if token is not None or not saved.get("url") or not saved.get("token"):
        return Target(chosen, token)
    saved_url = normalise_url(saved["url"])
    if saved_url == chosen:
        return Target(chosen, saved["token"])
    return Target(chosen, None, saved_url)
