"""Read dataset images from a zip file or a folder through one interface."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # Market-1501 and DukeMTMC-reID ship .jpg, CUHK03-NP .png


def is_hidden(name: str) -> bool:
    """True for macOS resource forks (``__MACOSX/``) and hidden files (a name starting with '.')."""
    parts = name.split("/")
    return any(p.startswith("__MACOSX") for p in parts) or parts[-1].startswith(".")


class SourceError(ValueError):
    """A dataset source that cannot be opened, or a member it does not hold."""


class ImageSource:
    """The files of a dataset zip or folder, addressed by '/'-separated relative names.

    Use as a context manager; :meth:`names` lists every regular file, :meth:`read` returns
    one file's bytes. For a zip the names are its member names; for a folder they are paths
    relative to it: a symlink counts wherever it points (an image, or a sub-folder such as one
    camera's crops on another disk; a folder reached through two paths is listed under both,
    and a link back to a folder above it, a cycle, is not followed), and a name that is absolute
    or holds '..' is refused.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._zip: zipfile.ZipFile | None = None
        if os.path.isdir(self.path):
            return
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"{self.path}: no such file or folder (expected a dataset .zip or image folder)")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SourceError(f"{self.path}: not a readable zip file ({exc})") from exc

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def names(self) -> list[str]:
        """Every file in the source ('/'-separated, folders excluded), sorted. A zip holding two
        members of one name is a SourceError naming it: zipfile lists both but reads only the last."""
        if self._zip is None:
            return sorted(_folder_files(self.path))
        names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        repeated = next((name for name, after in zip(names, names[1:]) if name == after), None)
        if repeated is not None:
            raise SourceError(f"{self.path}: member {repeated!r} appears {names.count(repeated)} times; expected each "
                              f"file once (only the last copy can be read)")
        return names

    def image_names(self) -> list[str]:
        """The names of :meth:`names` that end in an image extension (any case), sorted, hidden
        files, files in hidden folders ('.Trash-1000/', '.thumbnails/') and macOS resource forks
        left out: the crops a listing of the folder shows."""
        return [name for name in self.names() if name.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden(name)
                and not any(part.startswith(".") for part in name.split("/")[:-1])]

    def read(self, name: str) -> bytes:
        """The bytes of one file; SourceError naming the source when it is absent."""
        if self._zip is not None:
            try:
                return self._zip.read(name)
            except KeyError:
                raise SourceError(f"{self.path}: no member {name!r} in the zip") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise SourceError(f"{self.path}: cannot read member {name!r} ({exc}); the zip may be truncated") from exc
            except (RuntimeError, NotImplementedError) as exc:  # zipfile: password set; method it lacks (Deflate64)
                raise SourceError(
                    f"{self.path}: cannot read member {name!r} ({exc}); expected a zip without password, "
                    f"compressed with deflate, bzip2 or lzma (or stored)"
                ) from exc
        # Containment is decided on the name itself, not on where it resolves: a folder of
        # symlinked images (say, into a shared store) is read through its links, while an
        # absolute name or one climbing out with '..' never is.
        relative = PurePosixPath(name)
        if not name or relative.is_absolute() or ".." in relative.parts:
            raise SourceError(f"{self.path}: no file {name!r} in the folder (expected a path relative to it, without '..')")
        target = Path(self.path, *relative.parts)
        if not target.is_file():
            raise SourceError(f"{self.path}: no file {name!r} in the folder")
        try:
            return target.read_bytes()
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read file {name!r} ({exc.strerror or exc})") from exc


def _folder_files(root: str) -> list[str]:
    """Every file under `root` as a '/'-separated relative name, descending into symlinked
    sub-folders (a folder reached by two paths is listed under both; a link back to a folder above
    it, a cycle, is not entered). A folder that cannot be listed is a SourceError naming it,
    never a silent gap in the list."""
    found = []
    ancestors_of = {root: frozenset()}  # folder path -> (device, inode) of the folders above it

    def refuse(error: OSError) -> None:  # os.walk would skip the folder, and its images with it
        folder = Path(error.filename or root).relative_to(root).as_posix()
        reason = error.strerror or error
        if folder == ".":
            raise SourceError(f"{root}: cannot list the folder ({reason})")
        raise SourceError(f"{root}: cannot list its sub-folder {folder!r} ({reason}); make it readable, or move it out")

    for folder, subfolders, files in os.walk(root, onerror=refuse, followlinks=True):
        status = os.stat(folder)
        ancestors = ancestors_of.pop(folder)
        if (status.st_dev, status.st_ino) in ancestors:
            subfolders[:] = []
            continue
        for name in subfolders:
            ancestors_of[os.path.join(folder, name)] = ancestors | {(status.st_dev, status.st_ino)}
        relative = Path(folder).relative_to(root)
        found.extend((relative / name).as_posix() for name in files if os.path.isfile(os.path.join(folder, name)))
    return found
