"""The wire side of a files source: list, read and move files in a local folder or on an
FTP server (RFC 959; MLSD listings, RFC 3659). Blocking calls, run in a thread by the
connector; imports nothing from the bridge.

An FTP session is opened per operation: report folders are looked at every minute or so,
and a session kept open between looks would be dropped by the server's idle timeout anyway.
"""

from __future__ import annotations

import fnmatch
import ftplib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FolderError(Exception):
    """The folder or server refused or could not be reached; ``transient`` says if waiting
    may help (a connection refused or dropped, a 4xx FTP reply)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Entry:
    """A file in the folder."""

    name: str
    size: int


class LocalFolder:
    """``file:///folder``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def list(self, pattern: str) -> list[Entry]:
        """Files (not folders) matching ``pattern``, by name."""
        try:
            found = [
                Entry(p.name, p.stat().st_size)
                for p in self.path.iterdir()
                if p.is_file() and fnmatch.fnmatchcase(p.name, pattern)
            ]
        except OSError as exc:
            raise FolderError(f"{self.path}: {exc.strerror or exc}", transient=True) from exc
        return sorted(found, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """One file's bytes."""
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise FolderError(f"{name}: {exc.strerror or exc}", transient=True) from exc

    def move(self, name: str, to: str) -> None:
        """Rename ``name`` to ``to`` (a path relative to the folder), folders made."""
        target = self.path / to
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path / name, target)
        except OSError as exc:
            raise FolderError(f"{name} → {to}: {exc.strerror or exc}", transient=True) from exc


class FtpFolder:
    """``ftp://user@host:port/folder`` (user ``anonymous`` when none is given)."""

    def __init__(self, url: str, password: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 21
        self.user = unquote(parts.username or "anonymous")
        self.folder = unquote(parts.path) or "/"
        self._password = password or ""
        self.timeout = timeout

    def _session(self) -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=self.timeout)  # noqa: S321 - plain FTP is what such servers offer
        try:
            ftp.connect(self.host, self.port)
            ftp.login(self.user, self._password)
            ftp.cwd(self.folder)
        except (OSError, ftplib.Error) as exc:
            ftp.close()
            raise _folder_error(f"ftp://{self.host}:{self.port}{self.folder}", exc) from exc
        return ftp

    def list(self, pattern: str) -> list[Entry]:
        """Files matching ``pattern``, by name, with sizes (MLSD)."""
        ftp = self._session()
        try:
            found = [
                Entry(name, int(facts.get("size", "0")))
                for name, facts in ftp.mlsd(facts=["type", "size"])
                if facts.get("type") == "file" and fnmatch.fnmatchcase(name, pattern)
            ]
        except (OSError, ftplib.Error) as exc:
            raise _folder_error(f"listing {self.folder}", exc) from exc
        finally:
            _quit(ftp)
        return sorted(found, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """One file's bytes (binary mode: the encoding is the parser's business)."""
        ftp = self._session()
        buffer = io.BytesIO()
        try:
            ftp.retrbinary(f"RETR {name}", buffer.write)
        except (OSError, ftplib.Error) as exc:
            raise _folder_error(name, exc) from exc
        finally:
            _quit(ftp)
        return buffer.getvalue()

    def move(self, name: str, to: str) -> None:
        """RNFR/RNTO ``name`` to ``to``, making its folder first when it has one."""
        ftp = self._session()
        try:
            folder = to.rpartition("/")[0]
            if folder and folder not in {n for n, f in ftp.mlsd() if f.get("type") == "dir"}:
                ftp.mkd(folder)
            ftp.rename(name, to)
        except (OSError, ftplib.Error) as exc:
            raise _folder_error(f"{name} → {to}", exc) from exc
        finally:
            _quit(ftp)


def _folder_error(what: str, exc: BaseException) -> FolderError:
    """A 5xx reply is the server's refusal (no such file, no permission, bad login); a 4xx
    reply or a socket error may pass (RFC 959 §4.2: 4yz is a transient negative reply)."""
    transient = not isinstance(exc, ftplib.error_perm)
    return FolderError(f"{what}: {exc}", transient=transient)


def _quit(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, ftplib.Error):
        ftp.close()
