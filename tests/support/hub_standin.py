"""A loopback stand-in for the Hugging Face Hub endpoints that `huggingface_hub` calls.

The real Hub is unreachable here, so tests point the real client at this server (HF_ENDPOINT)
bound to 127.0.0.1. It implements what push/pull need and nothing more:

  POST /api/repos/create                                   create_repo (409 if it exists)
  POST /api/validate-yaml                                  README front matter must parse as YAML
  POST /api/{type}s/{repo}/preupload/{rev}                 upload modes: every file "regular"
  POST /api/{type}s/{repo}/commit/{rev}                    NDJSON commit (base64 file contents)
  GET  /api/{type}s/{repo}[/revision/{rev}]                repo_info (siblings)
  GET  /api/{type}s/{repo}/tree/{rev}[/{path}]             list_repo_tree
  GET  /api/{type}s/{repo}/refs                            list_repo_refs (pull requests with include_prs)
  POST /api/{type}s/{repo}/paths-info/{rev}                get_paths_info (expand: each file's last commit)
  HEAD/GET /[{type}s/]{repo}/resolve/{rev}/{path}          file download

Revisions are real: every commit keeps a snapshot of the files, and `main` or a commit sha
resolves to it (an unknown revision is a 404 RevisionNotFound). `Repo.refs` adds other refs, as
a test sets them: `refs/heads/<branch>`, `refs/tags/<tag>` and `refs/pr/<n>` (on the Hub anyone may
open a pull request on a public repository, and its commits resolve like the repository's own). Each commit gets a date from the
stand-in's clock (strictly increasing), and each file remembers the last commit that changed its
bytes, as git does (`lastCommit` of paths-info with expand). A commit whose header names a
`parentCommit` that is no longer the head is refused with 412, as the Hub does: that is what
makes a claim on a request atomic.

Repository ids are found whatever their case, and named as they were created, as on the Hub.
Writes, and reads of a private repo, need `Authorization: Bearer <token>`. Every request is
logged (method, path, and whether an Authorization header came), never the header itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class Repo:
    repo_type: str
    private: bool
    sdk: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> files at it
    # commit sha -> path -> the last commit that changed that file by then ({"id", "title", "date"})
    last_commits: dict[str, dict[str, dict]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # refs/heads/x, refs/tags/x, refs/pr/n -> commit sha

    @property
    def sha(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40

    def at(self, revision: str | None) -> tuple[str, dict[str, bytes]] | None:
        """(commit sha, files) of a branch name or commit sha; None if there is no such revision."""
        if revision in (None, "main"):
            return self.sha, self.files
        if revision in self.snapshots:
            return revision, self.snapshots[revision]
        for ref in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
            if ref in self.refs:
                return self.refs[ref], self.snapshots[self.refs[ref]]
        return None


class HubStandIn:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[tuple[str, str, bool]] = []
        self.bodies: list[bytes] = []  # every request body, to check no secret was sent in one
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._clock = datetime.now(timezone.utc)  # the date of the last commit
        self._commit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "HubStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- request handling -------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                hub._dispatch(self, "GET")

            def do_HEAD(self):
                hub._dispatch(self, "HEAD")

            def do_POST(self):
                hub._dispatch(self, "POST")

        return Handler

    def _authorised(self, request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _dispatch(self, request, method: str) -> None:
        path = unquote(urlparse(request.path).path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.bodies.append(body)
        self.log.append((method, path, "Authorization" in request.headers))
        routes = [
            ("POST", r"/api/repos/create", self._create),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)",
             self._preupload),
            ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", self._commit),
            ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)",
             self._paths_info),
            ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/refs", self._refs),
            ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?",
             self._tree),
            ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?",
             self._info),
            ("GET|HEAD", r"/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)",
             self._resolve),
        ]
        for methods, pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if match and method in methods.split("|"):
                route(request, method, body, **match.groupdict())
                return
        self._reply(request, 404, {"error": f"stand-in: no route for {method} {path}"})

    def _reply(self, request, status: int, payload=None, raw: bytes | None = None, headers=None, head=False):
        data = raw if raw is not None else json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        if status >= 400 and raw is None:
            request.send_header("X-Error-Message", payload.get("error", ""))
        request.end_headers()
        if not head:
            request.wfile.write(data)

    def _revision(self, request, repo: Repo, rev: str | None) -> tuple[str, dict[str, bytes]] | None:
        found = repo.at(rev)
        if found is None:
            self._reply(request, 404, {"error": f"Invalid rev id: {rev}"}, headers={"X-Error-Code": "RevisionNotFound"})
        return found

    def _repo(self, request, repo_type: str | None, repo_id: str, write: bool) -> Repo | None:
        repo = self.repos.get((repo_type or "model", self.canonical(repo_type, repo_id)))
        if repo is None:
            self._reply(request, 404, {"error": f"Repository {repo_id} not found"},
                        headers={"X-Error-Code": "RepoNotFound"})
            return None
        if (write or repo.private) and not self._authorised(request):
            self._reply(request, 401, {"error": "Invalid credentials in Authorization header"})
            return None
        return repo

    def canonical(self, repo_type: str | None, repo_id: str) -> str:
        """A repository's id as it was created: the Hub finds `Lab/FM` as `lab/fm`, and names it so."""
        for kind, name in self.repos:
            if kind == (repo_type or "model") and name.lower() == repo_id.lower():
                return name
        return repo_id

    # --- routes -----------------------------------------------------------------------
    def _create(self, request, method, body):
        if not self._authorised(request):
            return self._reply(request, 401, {"error": "Invalid credentials in Authorization header"})
        spec = json.loads(body)
        repo_type = spec.get("type") or "model"
        repo_id = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
        url = f"{self.endpoint}/{PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return self._reply(request, 409, {"error": "You already created this repo", "url": url})
        private = spec.get("visibility", "private" if spec.get("private") else "public") != "public"
        self.repos[(repo_type, repo_id)] = Repo(repo_type, private, spec.get("sdk"))
        self._reply(request, 200, {"url": url, "name": repo_id})

    def _validate_yaml(self, request, method, body):
        import yaml

        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            return self._reply(request, 400, {"errors": [{"message": str(error)}], "error": "invalid YAML"})
        warnings = [] if meta else [{"message": "empty or missing yaml metadata in repo card"}]
        self._reply(request, 200, {"errors": [], "warnings": warnings})

    def _preupload(self, request, method, body, type, repo, rev):
        if self._repo(request, type, repo, write=True) is None:
            return
        files = json.loads(body)["files"]
        self._reply(request, 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})

    def _commit(self, request, method, body, type, repo, rev):
        target = self._repo(request, type, repo, write=True)
        if target is None:
            return
        with self._commit_lock:  # a parent check and its commit are one step, as on the Hub
            self._apply_commit(request, body, type, repo, target)

    def _apply_commit(self, request, body, type, repo, target: Repo):
        items = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((item["value"] for item in items if item["key"] == "header"), {})
        if header.get("parentCommit") and header["parentCommit"] != target.sha:
            return self._reply(request, 412, {"error": "A commit has happened since. Please refresh and try again."})
        before = dict(target.files)
        for item in items:
            value = item["value"]
            if item["key"] == "file":
                target.files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                for name in [p for p in target.files if p == value["path"] or p.startswith(value["path"] + "/")]:
                    del target.files[name]
            elif item["key"] == "lfsFile":
                target.files = before
                return self._reply(request, 400, {"error": "stand-in: LFS uploads are not implemented"})
        sha = hashlib.sha1(body + str(len(target.commits)).encode()).hexdigest()
        self._clock = max(datetime.now(timezone.utc), self._clock + timedelta(milliseconds=1))
        this = {"id": sha, "title": header.get("summary", ""),
                "date": self._clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self._clock.microsecond // 1000:03d}Z"}
        last = target.last_commits.get(target.sha, {})
        changed = {name for name, data in target.files.items() if before.get(name) != data}  # other bytes, or new
        target.commits.append(sha)
        target.snapshots[sha] = dict(target.files)
        # a file a test placed in `files` directly has no commit of its own: this one is taken as it
        target.last_commits[sha] = {name: this if name in changed or name not in last else last[name]
                                    for name in target.files}
        url = f"{self.endpoint}/{PREFIX[type]}{repo}/commit/{sha}"
        self._reply(request, 200, {"commitUrl": url, "commitOid": sha, "success": True, "pullRequestUrl": None})

    def _info(self, request, method, body, type, repo, rev=None):
        target = self._repo(request, type, repo, write=False)
        found = target and self._revision(request, target, rev)
        if not found:
            return
        sha, files = found
        blobs = parse_qs(urlparse(request.path).query).get("blobs") == ["true"]
        repo = self.canonical(type, repo)
        self._reply(request, 200, {
            "id": repo, "_id": repo, "sha": sha, "private": target.private, "sdk": target.sdk,
            # with ?blobs=true (files_metadata), the Hub also gives each file's git blob id
            "siblings": [{"rfilename": name, "size": len(data), **({"blobId": _git_oid(data)} if blobs else {})}
                         for name, data in sorted(files.items())],
            "lastModified": "2026-11-22T00:00:00.000Z", "tags": [], "downloads": 0, "likes": 0,
        })

    def _refs(self, request, method, body, type, repo):
        target = self._repo(request, type, repo, write=False)
        if target is None:
            return

        def listed(prefix: str) -> list[dict]:
            return [{"name": ref.removeprefix(prefix), "ref": ref, "targetCommit": sha}
                    for ref, sha in sorted(target.refs.items()) if ref.startswith(prefix)]

        main = [{"name": "main", "ref": "refs/heads/main", "targetCommit": target.sha}] if target.commits else []
        payload = {"branches": main + listed("refs/heads/"), "converts": [], "tags": listed("refs/tags/")}
        if parse_qs(urlparse(request.path).query).get("include_prs"):
            payload["pullRequests"] = listed("refs/pr/")
        self._reply(request, 200, payload)

    def _tree(self, request, method, body, type, repo, rev, sub=None):
        target = self._repo(request, type, repo, write=False)
        found = target and self._revision(request, target, rev)
        if not found:
            return
        sub = (sub or "").strip("/")
        entries = [{"type": "file", "path": name, "size": len(data), "oid": _git_oid(data)}
                   for name, data in sorted(found[1].items()) if not sub or name.startswith(sub + "/")]
        self._reply(request, 200, entries)

    def _paths_info(self, request, method, body, type, repo, rev):
        """The files among the form's `paths` that exist at the revision (others are left out, as on
        the Hub); with `expand`, each with the last commit that changed it."""
        target = self._repo(request, type, repo, write=False)
        found = target and self._revision(request, target, rev)
        if not found:
            return
        sha, files = found
        form = parse_qs(body.decode())
        expand = form.get("expand", ["False"])[0].lower() == "true"
        entries = []
        for name in form.get("paths", []):
            if name in files:
                entry = {"type": "file", "path": name, "size": len(files[name]), "oid": _git_oid(files[name])}
                if expand and name in target.last_commits.get(sha, {}):  # not for a commit a test made by hand
                    entry["lastCommit"] = target.last_commits[sha][name]
                entries.append(entry)
        self._reply(request, 200, entries)

    def _resolve(self, request, method, body, type, repo, rev, file):
        target = self._repo(request, type, repo, write=False)
        found = target and self._revision(request, target, rev)
        if not found:
            return
        sha, files = found
        if file not in files:
            return self._reply(request, 404, {"error": f"Entry not found: {file}"},
                               headers={"X-Error-Code": "EntryNotFound"})
        data = files[file]
        self._reply(request, 200, raw=data, head=method == "HEAD",
                    headers={"X-Repo-Commit": sha, "ETag": f'"{_git_oid(data)}"'})


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
