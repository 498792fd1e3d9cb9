"""A TEST DOUBLE of the Hugging Face Hub: a small HTTP server on 127.0.0.1 for the tests.

It speaks the HTTP calls that `huggingface_hub` (create_repo, create_commit,
upload_folder, hf_hub_download, list_repo_tree, dataset_info) and `datasets`
(load_dataset) make for dataset repos, with the plain LFS upload path (set
HF_HUB_DISABLE_XET=1 in clients):

    POST /api/repos/create                              create a repo (409 when it exists)
    GET  /api/whoami-v2, /api/agent-harnesses (an empty registry)
    POST /api/validate-yaml                             the README front matter must be YAML
    GET  /api/datasets/NS/NAME[/revision/REV]           repo info: sha, siblings, cardData
    GET  /api/datasets/NS/NAME/refs                     branches (and PR refs)
    POST /api/datasets/NS/NAME/preupload/REV            upload mode (lfs/regular) and remote oid per file
    POST /datasets/NS/NAME.git/info/lfs/objects/batch   LFS batch: upload + verify actions for missing objects
    PUT  /_double/lfs/OID?sig=..                        the "pre-signed" object upload (no bearer token)
    POST /_double/lfs/OID/verify
    POST /api/datasets/NS/NAME/commit/REV[?create_pr=1] NDJSON commit: file / lfsFile / deletedFile / deletedFolder
    GET  /api/datasets/NS/NAME/tree/REV[/PATH]          listing (recursive, one page)
    POST /api/datasets/NS/NAME/paths-info/REV
    HEAD|GET /datasets/NS/NAME/resolve/REV/PATH         file bytes, with Range (resume) support

Every /api call needs `Authorization: Bearer <token>` with a known token for
writes and private repos; an unknown token is a 401 "Invalid credentials".
Objects are stored on disk under `root/objects`, repo state under
`root/repos`. `inject(route, ...)` makes the next matching requests fail
(an HTTP status, a dropped connection, or a body cut in half) to test retries and resumption;
with `lost=True` the request is carried out first and only its answer is replaced by the failure
(a commit that landed but whose response never arrived). Routes are the names in ROUTES (GET of a
file is "resolve", HEAD "resolve_head"). `requests` logs every call as (method, route, path, status).
`publish(repo_id, files, owner)` puts files in a repo directly, as a hostile third party would
publish them (any names, any bytes).

Run it by hand: python tests/hub_double.py --root /tmp/hub --token hf_x --port 8765
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".arrow", ".zip", ".gz", ".bin", ".safetensors")
REGULAR_MAX = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class Fault:
    route: str  # e.g. "lfs_upload", "commit", "resolve", "preupload"
    status: int | str | None  # an HTTP status; None: drop the connection; "truncate": send half the body, then close
    times: int  # how many requests fail
    after: int  # how many matching requests pass first
    lost: bool = False  # carry the request out, then fail instead of answering
    seen: int = 0
    fired: int = 0


class HubDouble:
    """The server. Use as a context manager; `endpoint` is its base URL."""

    def __init__(self, root: str | Path, tokens: dict[str, str] | None = None, port: int = 0):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.tokens = tokens if tokens is not None else {"hf_double_token": "tester"}  # token -> user
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str, int]] = []
        self._secret = hashlib.sha256(str(self.root).encode()).digest()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "HubDouble":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "HubDouble":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- test helpers -----------------------------------------------------------------------------
    def inject(self, route: str, status: int | str | None = 500, times: int = 1, after: int = 0,
               lost: bool = False) -> Fault:
        fault = Fault(route, status, times, after, lost)
        with self.lock:
            self.faults.append(fault)
        return fault

    def head(self, repo_id: str, ref: str = "main") -> str | None:
        return self._load(repo_id)["refs"].get(ref)

    def commits(self, repo_id: str) -> dict[str, dict]:
        return self._load(repo_id)["commits"]

    def file_bytes(self, repo_id: str, path: str, rev: str = "main") -> bytes:
        state = self._load(repo_id)
        entry = state["commits"][self._resolve_rev(state, rev)]["files"][path]
        return self._object(entry["sha256"]).read_bytes()

    def requests_of(self, route: str) -> list[tuple[str, str, str, int]]:
        return [r for r in self.requests if r[1] == route]

    def publish(self, repo_id: str, files: dict[str, bytes], owner: str | None = None, private: bool = False) -> str:
        """A repo holding exactly `files` (names taken as given) in one commit on main; returns its SHA."""
        with self.lock:
            state = {"owner": owner or repo_id.split("/")[0], "private": private, "refs": {}, "commits": {}, "prs": 0}
            entries = {".gitattributes": {"sha256": self._store(GITATTRIBUTES), "size": len(GITATTRIBUTES),
                                          "lfs": False}}
            for path, data in files.items():
                entries[path] = {"sha256": self._store(data), "size": len(data), "lfs": path.endswith(LFS_SUFFIXES)}
            state["refs"]["main"] = self._new_commit(state, None, entries, "publish")
            self._save(repo_id, state)
            return state["refs"]["main"]

    # -- storage ----------------------------------------------------------------------------------
    def _repo_file(self, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_id.replace('/', '__')}.json"

    def _load(self, repo_id: str) -> dict:
        path = self._repo_file(repo_id)
        if not path.exists():
            raise _HttpError(404, "Repository not found", "RepoNotFound")
        return json.loads(path.read_text())

    def _save(self, repo_id: str, state: dict) -> None:
        tmp = self._repo_file(repo_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self._repo_file(repo_id))

    def _object(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self._object(sha).exists():
            tmp = self._object(sha).with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(self._object(sha))
        return sha

    def _resolve_rev(self, state: dict, rev: str) -> str:
        rev = unquote(rev)
        if rev in state["refs"]:
            return state["refs"][rev]
        if rev.startswith("refs/heads/") and rev[11:] in state["refs"]:
            return state["refs"][rev[11:]]
        if rev in state["commits"]:
            return rev
        matches = [sha for sha in state["commits"] if len(rev) >= 7 and sha.startswith(rev)]
        if len(matches) == 1:
            return matches[0]
        raise _HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _new_commit(self, state: dict, parent: str | None, files: dict, message: str) -> str:
        body = json.dumps([parent, sorted(files.items()), message, len(state["commits"])]).encode()
        sha = hashlib.sha1(body).hexdigest()
        state["commits"][sha] = {"parent": parent, "message": message, "files": files}
        return sha

    def _sign(self, oid: str) -> str:
        return hmac.new(self._secret, oid.encode(), hashlib.sha256).hexdigest()[:32]


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
ROUTES: list[tuple[str, str, re.Pattern]] = [
    (m, name, re.compile(p + r"$"))
    for m, name, p in [
        ("POST", "create_repo", r"/api/repos/create"),
        ("GET", "whoami", r"/api/whoami-v2"),
        ("GET", "agent_harnesses", r"/api/agent-harnesses"),
        ("POST", "validate_yaml", r"/api/validate-yaml"),
        ("GET", "refs", rf"/api/datasets/{_REPO}/refs"),
        ("POST", "preupload", rf"/api/datasets/{_REPO}/preupload/(?P<rev>[^/]+)"),
        ("POST", "commit", rf"/api/datasets/{_REPO}/commit/(?P<rev>[^/]+)"),
        ("GET", "tree", rf"/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"),
        ("POST", "paths_info", rf"/api/datasets/{_REPO}/paths-info/(?P<rev>[^/]+)"),
        ("GET", "info", rf"/api/datasets/{_REPO}(?:/revision/(?P<rev>[^/]+))?"),
        ("POST", "lfs_batch", rf"/datasets/{_REPO}\.git/info/lfs/objects/batch"),
        ("PUT", "lfs_upload", r"/_double/lfs/(?P<oid>[0-9a-f]{64})"),
        ("POST", "lfs_verify", r"/_double/lfs/(?P<oid>[0-9a-f]{64})/verify"),
        ("HEAD", "resolve_head", rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
        ("GET", "resolve", rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
    ]
]
NEEDS_TOKEN = {"create_repo", "whoami", "preupload", "commit", "lfs_batch", "validate_yaml"}


def _make_handler(hub: HubDouble):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        # -- plumbing -----------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self.body = self._read_body()
            route, params = "unknown", {}
            for m, name, pattern in ROUTES:
                match = pattern.match(url.path)
                if m == method and match:
                    route, params = name, {k: v for k, v in match.groupdict().items() if v is not None}
                    break
            status = 500
            try:
                if route == "unknown":
                    raise _HttpError(404, f"the hub double does not serve {method} {url.path}")
                self.truncate, self.lost = False, None
                injected = self._fault(route)
                if injected == "truncate":
                    self.truncate = True
                elif isinstance(injected, Fault):
                    self.lost = injected  # carried out below; _send replaces the answer
                elif injected is not None:
                    status = injected  # 0: the connection was dropped
                    return
                self.user = self._authenticate(route, params)
                status = getattr(self, f"_{route}")(**params) or 200
            except _HttpError as e:
                status = e.status
                self._send_json(e.status, {"error": e.message}, code=e.code, message=e.message)
            finally:
                with hub.lock:
                    hub.requests.append((method, route, url.path, status))

        def _fault(self, route: str) -> int | str | Fault | None:
            """Answer with an injected failure when one is due: its status (0: dropped), else None; a `lost`
            fault is returned as is, to replace the answer once the request has been carried out."""
            with hub.lock:
                for fault in hub.faults:
                    if fault.route != route or fault.fired >= fault.times:
                        continue
                    fault.seen += 1
                    if fault.seen <= fault.after:
                        return None
                    fault.fired += 1
                    break
                else:
                    return None
            if fault.lost:
                return fault
            return self._fail(fault, route)

        def _fail(self, fault: Fault, route: str) -> int | str:
            if fault.status == "truncate":
                return "truncate"
            if fault.status is None:
                self.close_connection = True
                self.connection.shutdown(2)
                return 0
            self._send_json(fault.status, {"error": f"injected failure ({route})"})
            return fault.status

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authenticate(self, route: str, params: dict) -> str | None:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token is not None and token not in hub.tokens:
                raise _HttpError(401, "Invalid credentials in Authorization header")
            user = hub.tokens.get(token) if token else None
            if route in NEEDS_TOKEN and user is None:
                raise _HttpError(401, "You must be authenticated to access this resource")
            if "ns" in params and route not in {"create_repo"}:
                state = hub._load(f"{params['ns']}/{params['name']}")
                if state["private"] and user != state["owner"]:
                    raise _HttpError(404, "Repository not found", "RepoNotFound")
                if route in {"preupload", "commit", "lfs_batch"} and user != state["owner"]:
                    raise _HttpError(403, "You don't have the rights to write to this repository")
            return user

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            if getattr(self, "lost", None) is not None:  # the work is done; the answer is lost
                fault, self.lost = self.lost, None
                self._fail(fault, "lost answer")
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD" and getattr(self, "truncate", False):
                self.wfile.write(body[: len(body) // 2])  # an injected cut: half the promised bytes, then close
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
            elif self.command != "HEAD":
                self.wfile.write(body)

        def _send_json(self, status: int, value: Any, code: str | None = None, message: str | None = None) -> None:
            headers = {}
            if code:
                headers["X-Error-Code"] = code
            if message:
                headers["X-Error-Message"] = message
            self._send(status, json.dumps(value).encode(), "application/json", headers)

        def _json(self) -> Any:
            try:
                return json.loads(self.body or b"{}")
            except json.JSONDecodeError:
                raise _HttpError(400, "request body is not JSON") from None

        # -- routes -------------------------------------------------------------------------------
        def _whoami(self) -> None:
            self._send_json(200, {"type": "user", "name": self.user, "orgs": [], "auth": {"type": "access_token"}})

        def _agent_harnesses(self) -> None:  # huggingface_hub's user-agent registry; none here
            self._send_json(200, {"standardEnvVars": [], "harnesses": {}})

        def _create_repo(self) -> int:
            payload = self._json()
            if payload.get("type") != "dataset":
                raise _HttpError(400, "the hub double only hosts dataset repos")
            ns = payload.get("organization") or self.user
            repo_id = f"{ns}/{payload['name']}"
            url = f"{hub.endpoint}/datasets/{repo_id}"
            with hub.lock:
                if hub._repo_file(repo_id).exists():
                    self._send_json(409, {"error": "You already created this dataset repo", "url": url})
                    return 409
                if ns != self.user:
                    raise _HttpError(403, f"You don't have the rights to create a dataset under {ns}")
                private = payload.get("visibility") == "private" or bool(payload.get("private"))
                state = {"owner": self.user, "private": private, "refs": {}, "commits": {}, "prs": 0}
                sha = hub._store(GITATTRIBUTES)
                files = {".gitattributes": {"sha256": sha, "size": len(GITATTRIBUTES), "lfs": False}}
                state["refs"]["main"] = hub._new_commit(state, None, files, "initial commit")
                hub._save(repo_id, state)
            self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})
            return 200

        def _validate_yaml(self) -> None:
            content = self._json().get("content", "")
            match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            if not match:
                self._send_json(200, {"warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
                return
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as e:
                self._send_json(400, {"errors": [{"message": f"invalid YAML: {e}"}]})
                return
            if not isinstance(meta, dict):
                self._send_json(400, {"errors": [{"message": "metadata must be a YAML mapping"}]})
                return
            for config in meta.get("configs") or []:
                if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
                    self._send_json(400, {"errors": [{"message": '"configs" entries need config_name and data_files'}]})
                    return
            self._send_json(200, {"warnings": []})

        def _info(self, ns: str, name: str, rev: str = "main") -> None:
            repo_id = f"{ns}/{name}"
            state = hub._load(repo_id)
            sha = hub._resolve_rev(state, rev)
            files = state["commits"][sha]["files"]
            card = {}
            if "README.md" in files:
                text = hub._object(files["README.md"]["sha256"]).read_text()
                match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
                card = (yaml.safe_load(match.group(1)) or {}) if match else {}
            info = {
                "_id": repo_id, "id": repo_id, "author": ns, "sha": sha, "private": state["private"],
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "createdAt": "2026-01-01T00:00:00.000Z", "lastModified": "2026-01-01T00:00:00.000Z",
                "cardData": card, "siblings": [{"rfilename": p} for p in sorted(files)],
            }
            if self.query.get("blobs"):  # the Hub's sibling shape: blobId, size, lfs {sha256, size, pointerSize}
                for s in info["siblings"]:
                    entry = self._entry(s["rfilename"], files[s["rfilename"]])
                    s.update(blobId=entry["oid"], size=entry["size"])
                    if "lfs" in entry:
                        s["lfs"] = {"sha256": entry["lfs"]["oid"], "size": entry["size"],
                                    "pointerSize": entry["lfs"]["pointerSize"]}
            self._send_json(200, info)

        def _refs(self, ns: str, name: str) -> None:
            state = hub._load(f"{ns}/{name}")
            branches = [{"name": r, "ref": f"refs/heads/{r}", "targetCommit": s}
                        for r, s in state["refs"].items() if not r.startswith("refs/pr/")]
            out = {"branches": branches, "converts": [], "tags": []}
            if self.query.get("include_prs"):
                out["pullRequests"] = [{"name": r, "ref": r, "targetCommit": s}
                                       for r, s in state["refs"].items() if r.startswith("refs/pr/")]
            self._send_json(200, out)

        def _preupload(self, ns: str, name: str, rev: str) -> None:
            state = hub._load(f"{ns}/{name}")
            remote = state["commits"][hub._resolve_rev(state, rev)]["files"]
            out = []
            for f in self._json().get("files", []):
                lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > REGULAR_MAX
                entry = remote.get(f["path"])
                oid = None
                if entry is not None:
                    oid = entry["sha256"] if entry["lfs"] else git_blob_sha1(hub._object(entry["sha256"]).read_bytes())
                out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": oid})
            self._send_json(200, {"files": out, "commitOid": hub._resolve_rev(state, rev)})

        def _lfs_batch(self, ns: str, name: str) -> None:
            payload = self._json()
            if payload.get("operation") != "upload":
                raise _HttpError(400, "the hub double only supports LFS uploads")
            objects = []
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], obj["size"]
                item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
                if not hub._object(oid).exists():
                    href = f"{hub.endpoint}/_double/lfs/{oid}?size={size}&sig={hub._sign(oid)}"
                    item["actions"] = {
                        "upload": {"href": href, "header": {}},
                        "verify": {"href": f"{hub.endpoint}/_double/lfs/{oid}/verify", "header": {}},
                    }
                objects.append(item)
            body = json.dumps({"transfer": "basic", "objects": objects}).encode()
            self._send(200, body, "application/vnd.git-lfs+json")

        def _lfs_upload(self, oid: str) -> None:
            if not hmac.compare_digest(self.query.get("sig", ""), hub._sign(oid)):
                raise _HttpError(403, "bad signature on the upload URL")
            if hashlib.sha256(self.body).hexdigest() != oid:
                raise _HttpError(400, "uploaded bytes do not match the LFS oid")
            hub._store(self.body)
            self._send(200, b"", "text/plain", {"ETag": f'"{oid}"'})

        def _lfs_verify(self, oid: str) -> None:
            payload = self._json()
            path = hub._object(oid)
            if not path.exists() or path.stat().st_size != payload.get("size"):
                raise _HttpError(404, f"LFS object {oid} was not uploaded")
            self._send_json(200, {"success": True})

        def _commit(self, ns: str, name: str, rev: str) -> None:
            repo_id = f"{ns}/{name}"
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
            if not lines or lines[0].get("key") != "header":
                raise _HttpError(400, "a commit starts with a header line")
            header = lines[0]["value"]
            with hub.lock:
                state = hub._load(repo_id)
                rev = unquote(rev)
                base = hub._resolve_rev(state, rev)
                if header.get("parentCommit") and header["parentCommit"] != base:
                    raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
                files = dict(state["commits"][base]["files"])
                for line in lines[1:]:
                    key, value = line["key"], line["value"]
                    path = value["path"]
                    if key == "file":
                        if path.endswith(LFS_SUFFIXES):
                            raise _HttpError(400, f"{path}: binary files must be uploaded through LFS")
                        data = base64.b64decode(value["content"])
                        files[path] = {"sha256": hub._store(data), "size": len(data), "lfs": False}
                    elif key == "lfsFile":
                        obj = hub._object(value["oid"])
                        if not obj.exists():
                            raise _HttpError(422, f"{path}: LFS object {value['oid']} was never uploaded")
                        files[path] = {"sha256": value["oid"], "size": obj.stat().st_size, "lfs": True}
                    elif key == "deletedFile":
                        if files.pop(path, None) is None:
                            raise _HttpError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    elif key == "deletedFolder":
                        prefix = path.rstrip("/") + "/"
                        for p in [p for p in files if p.startswith(prefix)]:
                            del files[p]
                    else:
                        raise _HttpError(400, f"unknown commit operation {key!r}")
                sha = hub._new_commit(state, base, files, header.get("summary", ""))
                pr_url = None
                if self.query.get("create_pr"):
                    state["prs"] += 1
                    state["refs"][f"refs/pr/{state['prs']}"] = sha
                    pr_url = f"{hub.endpoint}/datasets/{repo_id}/discussions/{state['prs']}"
                elif rev in state["refs"]:
                    state["refs"][rev] = sha
                else:
                    raise _HttpError(400, f"cannot commit to {rev}: not a branch", "RevisionNotFound")
                hub._save(repo_id, state)
            self._send_json(200, {"success": True, "commitOid": sha, "pullRequestUrl": pr_url,
                                  "commitUrl": f"{hub.endpoint}/datasets/{repo_id}/commit/{sha}"})

        def _entry(self, path: str, entry: dict) -> dict:
            if entry["lfs"]:
                pointer = lfs_pointer(entry["sha256"], entry["size"])
                return {"type": "file", "path": path, "size": entry["size"], "oid": git_blob_sha1(pointer),
                        "lfs": {"oid": entry["sha256"], "size": entry["size"], "pointerSize": len(pointer)}}
            data = hub._object(entry["sha256"]).read_bytes()
            return {"type": "file", "path": path, "size": entry["size"], "oid": git_blob_sha1(data)}

        def _listing(self, files: dict, base: str, recursive: bool) -> list[dict]:
            prefix = base.strip("/") + "/" if base.strip("/") else ""
            out, folders = [], set()
            for path in sorted(files):
                if not path.startswith(prefix):
                    continue
                rest = path[len(prefix):]
                if "/" in rest:
                    parts = rest.split("/")[:-1]
                    for i in range(1, len(parts) + 1 if recursive else 2):
                        folders.add(prefix + "/".join(parts[:i]))
                    if not recursive:
                        continue
                out.append(self._entry(path, files[path]))
            out += [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0}
                    for f in sorted(folders)]
            return out

        def _tree(self, ns: str, name: str, rev: str, path: str = "") -> None:
            state = hub._load(f"{ns}/{name}")
            files = state["commits"][hub._resolve_rev(state, rev)]["files"]
            path = unquote(path).strip("/")
            if path and not any(p.startswith(path + "/") for p in files):
                raise _HttpError(404, f"{path} does not exist on this revision", "EntryNotFound")
            recursive = self.query.get("recursive", "").lower() in ("1", "true")
            self._send_json(200, self._listing(files, path, recursive))

        def _paths_info(self, ns: str, name: str, rev: str) -> None:
            state = hub._load(f"{ns}/{name}")
            files = state["commits"][hub._resolve_rev(state, rev)]["files"]
            form = parse_qs(self.body.decode())
            out = []
            for path in form.get("paths", []):
                path = path.strip("/")
                if path in files:
                    out.append(self._entry(path, files[path]))
                elif any(p.startswith(path + "/") for p in files):
                    out.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
            self._send_json(200, out)

        def _resolve(self, ns: str, name: str, rev: str, path: str) -> int:
            state = hub._load(f"{ns}/{name}")
            sha = hub._resolve_rev(state, rev)
            path = unquote(path)
            entry = state["commits"][sha]["files"].get(path)
            if entry is None:
                raise _HttpError(404, f"{path} does not exist on {unquote(rev)}", "EntryNotFound")
            data = hub._object(entry["sha256"]).read_bytes()
            etag = entry["sha256"] if entry["lfs"] else git_blob_sha1(data)
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if entry["lfs"]:
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            status = 200
            match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data) and len(data):
                    raise _HttpError(416, "range not satisfiable")
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start:end + 1], 206
            self._send(status, data, "application/octet-stream", headers)
            return status

    Handler._resolve_head = Handler._resolve
    return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the Hub test double in the foreground.")
    parser.add_argument("--root", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--user", default="tester")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    double = HubDouble(args.root, {args.token: args.user}, port=args.port)
    print(f"hub double at {double.endpoint}; export HF_ENDPOINT={double.endpoint} HF_HUB_DISABLE_XET=1", flush=True)
    double.start()
    threading.Event().wait()
