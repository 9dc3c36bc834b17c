"""Many small files of a Hub repository at one commit, with no call for those already on disk.

The queue's request files and the board's result files are read again after every commit to
their dataset. `snapshot_download` at a new commit asks the Hub about every file (one HEAD each),
changed or not: a board with thousands of results or requests made thousands of calls per read.
Here the repository's listing (one call, `repo_info(files_metadata=True)`, which the callers make
anyway) gives each file's blob id, and a file whose blob is already in the local Hub cache is read
from there: the cache keeps each file once under `blobs/<etag>`, where the etag is the git blob id
(the LFS sha256 for an LFS file), a layout the Hub documents for every client
(https://huggingface.co/docs/hub/local-cache). Only the other files are downloaded, at the commit
listed, 8 at a time as `snapshot_download` does, without a progress bar per file. A cached blob of
another size than the listing gives (cut short on a full disk, emptied by hand) is removed and
downloaded again: huggingface_hub would serve it as it is, and a request read from it would be
listed as invalid for ever while the Hub holds it whole.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.hub_access import hub_call


def _cached_blob(repo_id: str, repo_type: str, sibling) -> Path | None:
    from huggingface_hub import constants

    etag = sibling.lfs.sha256 if sibling.lfs else sibling.blob_id
    if not etag:
        return None
    path = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "blobs" / etag
    if not path.is_file():
        return None
    if sibling.size is not None and path.stat().st_size != sibling.size:
        path.unlink(missing_ok=True)  # damaged: hf_hub_download fetches it again instead of linking it
        return None
    return path


def files_at_commit(repo_id: str, repo_type: str, sha: str, siblings: list, what: str) -> dict[str, Path]:
    """rfilename -> a local copy, for each of these siblings (from a listing at commit `sha`)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import tqdm

    class Quiet(tqdm):  # a queue or board of hundreds of files would print hundreds of bars
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    copies: dict[str, Path] = {}
    missing = []
    for sibling in siblings:
        cached = _cached_blob(repo_id, repo_type, sibling)
        if cached is not None:
            copies[sibling.rfilename] = cached
        else:
            missing.append(sibling)

    def fetch(sibling) -> Path:
        return Path(hub_call(what, repo_id, lambda: hf_hub_download(
            repo_id, sibling.rfilename, repo_type=repo_type, revision=sha, tqdm_class=Quiet)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for sibling, path in zip(missing, pool.map(fetch, missing)):
            copies[sibling.rfilename] = path
    return copies
