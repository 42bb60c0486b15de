"""Generated HTTP exchanges for the proxy fuzz properties, and what the proxy must make of them.

A `ClientRequest` is what the client puts on the wire; `forwarded_start`/`forwarded_fields` is
what the model server must then receive under the proxy's documented handling (README "How it
works", RFC 9110 §7.6.1 and RFC 9112 §3.2 as exporter/proxy applies them):

- the request line becomes `METHOD TARGET HTTP/1.1`, the target byte for byte (an absolute-form
  one in origin-form, its authority as Host);
- hop-by-hop fields and the fields a Connection header names are dropped, every other field
  passes in order with its name's case, its value modulo optional whitespace; an HTTP/1.0
  request without Host gets the model server's;
- a Content-Length body passes byte for byte; a chunked body is re-chunked: the same content
  and end-to-end trailer fields, chunk extensions dropped (the chunked coding is hop-by-hop).

An `UpstreamResponse` is what the model server answers; `expected_head` is the byte-exact head
the client must get back and its body content and trailers must arrive unchanged.
"""

from __future__ import annotations

import gzip
import random
import string
from dataclasses import dataclass
from typing import Any

from fuzz_payloads import dumps, random_json, seeded
from fuzz_wire import HOP_BY_HOP, chunked, kept_trailers, nominated
from hypothesis import strategies as st

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
OBS_TEXT = "".join(chr(c) for c in range(0x80, 0x100))  # latin-1: one byte each on the wire
# RFC 3986 pchar without pct-encoded: what a path segment may hold as is.
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
# Bytes RFC 3986 does not allow in a request-target that llhttp lets through: the proxy may
# forward them (unchanged) or refuse the request with a 4xx, nothing else.
ODD_TARGET_CHARS = '"<>\\^`{|}#'

# Methods llhttp knows; the proxy must forward every one of them.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE", "REPORT", "SEARCH",
           "PROPFIND", "MKCOL", "QUERY")
# Paths that reach the capture and the analysis worker, besides generated ones.
INFERENCE_PATHS = ("/v2/models/m/infer", "/v2/models/demo/versions/1/infer", "/v1/models/m:predict",
                   "/invocations", "/v1/chat/completions", "/v1/completions", "/api/v1.0/predictions", "/predict")
KNOWN_NAMES = ("Accept", "accept", "ACCEPT", "User-Agent", "Content-Type", "content-type", "Authorization",
               "Cookie", "X-Request-Id", "traceparent", "X-Custom", "x-custom", "X-Dup", "X-DUP", "Accept-Encoding",
               "Content-Encoding", "Inference-Header-Content-Length", "Cache-Control", "If-None-Match", "Set-Cookie")
# Fields the generators set themselves (framing, the id the upstream files requests under).
RESERVED = frozenset({"host", "content-length", "transfer-encoding", "x-fuzz-id", "expect", *HOP_BY_HOP})
HOP_FIELDS = (("Connection", "keep-alive"), ("Connection", "Keep-Alive"), ("Connection", "close"),
              ("Connection", "CLOSE"), ("Connection", "te"), ("Connection", "keep-alive, te"),
              ("Keep-Alive", "timeout=5, max=100"), ("TE", "trailers"), ("Proxy-Connection", "keep-alive"),
              ("Trailer", "X-Trailer"))
RESPONSE_HOP_FIELDS = (("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "x"),
                       ("TE", "trailers"), ("Trailer", "X-Trailer"))
# Trailer sections of chunked bodies: end-to-end fields pass, hop-by-hop ones and Host do not.
# (A Content-Length trailer is refused outright by llhttp, as framing in a chunked message.)
TRAILERS = ("", "", "X-Trailer: t\r\n", "X-Trailer: t\r\nX-Other: 2\r\n", "Host: elsewhere\r\nX-Trailer: t\r\n",
            "TE: trailers\r\n")
# Statuses whose responses never have a body (RFC 9110 §6.4.1); 1xx are only ever interim here.
BODYLESS_STATUS = (204, 304)
STATUSES = (200, 201, 202, 203, 204, 206, 207, 226, 299, 300, 301, 302, 304, 307, 308, 400, 401, 403, 404,
            405, 409, 413, 418, 422, 429, 451, 499, 500, 501, 502, 503, 504, 507, 599)


def latin1(text: str) -> bytes:
    return text.encode("latin-1")


# ------------------------------------------------------------------ generators: pieces
#
# Plain functions of a random.Random that Hypothesis seeds (fuzz_payloads.seeded): its own
# text and list strategies cost about 30 ms a request, a seeded generator well under one.


def _text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def field_name(rng: random.Random) -> str:
    """A common name in odd case (a small pool, so duplicates are frequent), or any token."""
    if rng.random() < 0.5:
        return rng.choice(KNOWN_NAMES)
    while True:
        name = _text(rng, TCHAR, 1, 12)
        if name.lower() not in RESERVED:
            return name


def field_value(rng: random.Random, ows: bool) -> str:
    """Visible ASCII, inner spaces and tabs, obs-text; with `ows`, optional whitespace around it."""
    value = _text(rng, VCHAR + " \t" + OBS_TEXT, 0, 40).strip(" \t")
    if ows:
        value = rng.choice(["", "", " ", "  ", "\t"]) + value + rng.choice(["", "", " ", "\t "])
    return value


def field_list(rng: random.Random, ows: bool) -> list[tuple[str, str]]:
    return [(field_name(rng), field_value(rng, ows)) for _ in range(rng.randint(0, 8))]


def _pct(rng: random.Random) -> str:
    return "%" + rng.choice(string.hexdigits) + rng.choice(string.hexdigits)


def _piece(rng: random.Random, alphabet: str) -> str:
    return "".join(_pct(rng) if rng.random() < 0.2 else _text(rng, alphabet, 0, 6) for _ in range(rng.randint(0, 3)))


def target(rng: random.Random, strict_only: bool) -> tuple[str, bool]:
    """(request-target, strict): strict targets are RFC 3986 valid and must be forwarded."""
    if rng.random() < 0.3:
        path = rng.choice(INFERENCE_PATHS)
    else:
        path = "/" + "/".join(_piece(rng, PCHAR) for _ in range(rng.randint(1, 5)))
    if rng.random() < 0.4:
        path += "?" + _piece(rng, PCHAR + "/?")
    if rng.random() < 0.1:
        path = "http://model.example:8080" + path  # absolute-form
    if not strict_only and rng.random() < 0.25:
        return path + _text(rng, ODD_TARGET_CHARS + PCHAR, 1, 6), False
    return path, True


def v2_document(rng: random.Random) -> Any:
    """A V2 inference request, sometimes inconsistent: the worker sees real payloads and bad ones."""
    n = rng.randint(0, 4)
    data = [rng.choice([rng.uniform(-1e6, 1e6), None, _text(rng, string.ascii_letters, 0, 3)])
            for _ in range(n + rng.randint(0, 1))]
    return {"inputs": [{"name": rng.choice(["income", "age", "x", ""]), "shape": [n, 1],
                        "datatype": rng.choice(["FP32", "INT64", "BYTES", "BOOL"]), "data": data}]}


def body(rng: random.Random, small: bool = False) -> tuple[bytes, list[tuple[str, str]]]:
    """(body, fields it implies): empty, random bytes, JSON, V2, gzip of those, or (unless
    `small`) a blob larger than one socket read."""
    kind = rng.choice(["empty", "bytes", "json", "v2", "gzip"] + ([] if small else ["large"]))
    if kind == "empty":
        return b"", []
    if kind == "bytes":
        return rng.randbytes(rng.randint(1, 2048)), []
    if kind == "large":
        return rng.randbytes(rng.randint(64 * 1024, 256 * 1024)), [("Content-Type", "application/octet-stream")]
    doc = v2_document(rng) if kind == "v2" else random_json(rng, 12)
    data = dumps(doc)
    if kind == "gzip":
        return gzip.compress(data, mtime=0), [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    return data, [("Content-Type", "application/json")]


def cut(rng: random.Random, data: bytes) -> tuple[bytes, ...]:
    """`data` split at up to six random places (the chunks of a chunked body)."""
    edges = sorted({rng.randint(0, len(data)) for _ in range(rng.randint(0, 6))} | {0, len(data)})
    return tuple(data[a:b] for a, b in zip(edges, edges[1:]))


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class ClientRequest:
    """One request as the client writes it; `strict` if RFC 9112 requires a server to accept it."""

    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    fields: tuple[tuple[str, str], ...]  # as sent, values with any whitespace around them
    body: bytes
    framing: str  # "none", "length" or "chunked"
    chunks: tuple[bytes, ...] = ()
    chunk_extension: str = ""
    trailers: str = ""
    strict: bool = True
    fuzz_id: str = ""

    def encode(self) -> bytes:
        head = [f"{self.method} {self.target} {self.version}\r\n"]
        head += [f"{name}:{value}\r\n" if value[:1] in (" ", "\t") else f"{name}: {value}\r\n"
                 for name, value in self.fields]
        out = latin1("".join(head)) + b"\r\n"
        if self.framing == "chunked":
            return out + chunked(list(self.chunks), latin1(self.chunk_extension), latin1(self.trailers))
        return out + self.body

    def keep_alive(self) -> bool:
        """Whether the client asked to keep the connection (RFC 9112 §9.3, as llhttp reads it:
        the legacy Proxy-Connection field counts like Connection)."""
        tokens = {t.strip(" \t").lower() for n, v in self.fields if n.lower() in ("connection", "proxy-connection")
                  for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def authority(self) -> str | None:
        """The authority of an absolute-form target (http://host:port/...), else None."""
        return self.target[len("http://"):].split("/", 1)[0] if self.target.startswith("http://") else None

    def forwarded_start(self) -> bytes:
        """The request line upstream: HTTP/1.1, an absolute-form target in origin-form.

        Origin-form: the path and query exactly as sent (`http://h/p?` goes up as `/p?`), `/` for
        an empty path, the fragment left out.
        """
        if self.authority() is None:
            return latin1(f"{self.method} {self.target} HTTP/1.1")
        rest = self.target[len("http://") + len(self.authority() or ""):].split("#", 1)[0]
        return latin1(f"{self.method} {rest if rest.startswith('/') else '/' + rest} HTTP/1.1")

    def forwarded_fields(self, upstream_host: str) -> list[tuple[bytes, bytes]]:
        """The fields the model server must receive, values without surrounding whitespace:
        hop-by-hop and Connection-named ones dropped, Host from an absolute-form target's
        authority, or the model server's for an HTTP/1.0 request without one."""
        kept = [(n, v.strip(" \t")) for n, v in self.fields if n.lower() not in HOP_BY_HOP]
        authority = self.authority()
        if authority is not None:
            kept = [(n, v) for n, v in kept if n.lower() != "host"] + [("Host", authority)]
        elif not any(n.lower() == "host" for n, _ in kept):
            kept.append(("Host", upstream_host))
        dropped = nominated(self.fields)
        return [(latin1(n), latin1(v)) for n, v in kept if n.lower() not in dropped]

    def forwarded_trailers(self) -> bytes:
        return kept_trailers(self.trailers)


def random_request(rng: random.Random, fuzz_id: str, strict_only: bool = False, small: bool = False) -> ClientRequest:
    """A request with every field kind: duplicates, odd case, hop-by-hop fields, odd values.

    `strict_only`: only targets RFC 3986 allows; `small`: a body that arrives in one read.
    """
    method = rng.choice(METHODS)
    path, strict = target(rng, strict_only)
    if method == "OPTIONS" and rng.random() < 0.3:
        path, strict = "*", True
    version = rng.choice(["HTTP/1.1"] * 5 + ["HTTP/1.0"])
    content, implied = body(rng, small)
    own = field_list(rng, ows=True)
    if version == "HTTP/1.1" or rng.random() < 0.5:  # exactly one in HTTP/1.1 (RFC 9112 §3.2), else 400
        own.append((rng.choice(["Host", "host", "HOST"]), rng.choice(["a", "model.example:8080", "[::1]:1", ""])))
    hop = list({f[0].lower(): f for f in rng.sample(HOP_FIELDS, rng.randint(0, 2))}.values())
    if version == "HTTP/1.0":  # 1.0 keeps the connection only on request; never both tokens (llhttp)
        hop = [f for f in hop if f[0] != "Connection"] + rng.choice([[], [("Connection", "keep-alive")]])
    if rng.random() < 0.2:  # a Connection header naming fields: those are dropped, but not the framing ones
        named = [rng.choice(own)[0] if own else "X-Absent", rng.choice(["Host", "Content-Length", "X-Absent"])]
        hop.append(("Connection", ", ".join(named)))
    # an HTTP/1.0 request with Transfer-Encoding is refused (RFC 9112 §6.1): a case of test_proxy_malformed
    framing = rng.choice(["length"] + (["chunked"] if version == "HTTP/1.1" else []) + (["none"] if not content else []))
    frame_field = {"length": [("Content-Length", str(len(content)))], "chunked": [("Transfer-Encoding", "chunked")],
                   "none": []}[framing]
    fields = list(own)
    for item in [*implied, *hop, *frame_field, ("X-Fuzz-Id", fuzz_id)]:
        fields.insert(rng.randint(0, len(fields)), item)  # anywhere: framing fields need not come last
    chunked_body = framing == "chunked"
    return ClientRequest(
        method, path, version, tuple(fields), content, framing, cut(rng, content) if chunked_body else (),
        chunk_extension=rng.choice(["", ";a=b", ';name="q v"', ";x"]) if chunked_body else "",
        trailers=rng.choice(TRAILERS) if chunked_body else "",
        strict=strict, fuzz_id=fuzz_id,
    )


def client_requests(fuzz_id: str, strict_only: bool = False, small: bool = False) -> st.SearchStrategy[ClientRequest]:
    return seeded().map(lambda rng: random_request(rng, fuzz_id, strict_only, small))


# ------------------------------------------------------------------ responses


@dataclass(frozen=True)
class UpstreamResponse:
    """What the model server answers: optional 103 interim response, then the final one."""

    status: int
    reason: str
    fields: tuple[tuple[str, str], ...]
    body: bytes
    framing: str  # "length", "chunked" or "close" (the body ends when the upstream closes)
    chunks: tuple[bytes, ...] = ()
    chunk_extension: str = ""
    trailers: str = ""
    interim: tuple[tuple[str, str], ...] | None = None  # fields of a 103 Early Hints, or None

    def final_fields(self) -> list[tuple[str, str]]:
        frame = {"length": [("Content-Length", str(len(self.body)))], "chunked": [("Transfer-Encoding", "chunked")],
                 "close": []}[self.framing]
        return [*self.fields, *frame]

    def encode(self, head_only: bool) -> bytes:
        """The bytes on the wire; `head_only` for a HEAD request (the head describes a body not sent)."""
        out = b""
        if self.interim is not None:
            out += latin1("HTTP/1.1 103 Early Hints\r\n" + "".join(f"{n}: {v}\r\n" for n, v in self.interim)) + b"\r\n"
        out += latin1(f"HTTP/1.1 {self.status} {self.reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in self.final_fields()))
        out += b"\r\n"
        if head_only or self.status in BODYLESS_STATUS:
            return out
        if self.framing == "chunked":
            return out + chunked(list(self.chunks), latin1(self.chunk_extension), latin1(self.trailers))
        return out + self.body

    def close_delimited(self, request: ClientRequest) -> bool:
        """The client's body ends with the connection: the upstream's has no length, or is chunked
        and the client speaks HTTP/1.0 (it gets the content de-chunked; the proxy decides this from
        the head alone, so also for HEAD)."""
        if self.framing == "chunked" and request.version == "HTTP/1.0":
            return True
        return self.framing == "close" and request.method != "HEAD" and self.status not in BODYLESS_STATUS

    def closes_upstream(self, request: ClientRequest) -> bool:
        """Whether the upstream closes after answering (its body is delimited by the close)."""
        return self.framing == "close" and request.method != "HEAD" and self.status not in BODYLESS_STATUS

    def keeps_client(self, request: ClientRequest) -> bool:
        return request.keep_alive() and not self.close_delimited(request)

    def expected_interim(self) -> bytes | None:
        if self.interim is None:
            return None
        kept = [f"{n}: {v}\r\n" for n, v in self.interim if n.lower() not in HOP_BY_HOP]
        return latin1("HTTP/1.1 103 Early Hints\r\n" + "".join(kept)) + b"\r\n"

    def expected_head(self, request: ClientRequest) -> bytes:
        """The final response head the client must get, byte for byte: hop-by-hop and
        Connection-named fields dropped, Transfer-Encoding too for an HTTP/1.0 client (it gets the
        content de-chunked), then what the connection does: `close`, or `keep-alive` to HTTP/1.0."""
        dropped = nominated(self.fields)
        kept = [(n, v) for n, v in self.final_fields() if n.lower() not in HOP_BY_HOP and n.lower() not in dropped]
        if request.version == "HTTP/1.0":
            kept = [(n, v) for n, v in kept if n.lower() != "transfer-encoding"]
        if not self.keeps_client(request):
            kept.append(("Connection", "close"))
        elif request.version == "HTTP/1.0":
            kept.append(("Connection", "keep-alive"))
        return latin1(f"HTTP/1.1 {self.status} {self.reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in kept)) + b"\r\n"

    def expected_content(self, request: ClientRequest) -> bytes:
        if request.method == "HEAD" or self.status in BODYLESS_STATUS:
            return b""
        return self.body

    def expected_trailers(self, request: ClientRequest) -> bytes:
        """The trailer section a chunked answer to an HTTP/1.1 client ends with."""
        if self.framing != "chunked" or request.method == "HEAD" or request.version == "HTTP/1.0":
            return b""
        return kept_trailers(self.trailers)


def random_response(rng: random.Random, allow_close: bool = True) -> UpstreamResponse:
    """A response with duplicate and hop-by-hop fields, any framing, sometimes a 103 first."""
    status = rng.choice(STATUSES)
    reason = _text(rng, VCHAR + " " + OBS_TEXT, 0, 20).strip(" ")
    fields = [(field_name(rng), field_value(rng, ows=False)) for _ in range(rng.randint(0, 8))]
    fields += list({f[0].lower(): f for f in rng.sample(RESPONSE_HOP_FIELDS, rng.randint(0, 2))}.values())
    if fields and rng.random() < 0.2:  # the model server's Connection names one of its fields: dropped
        fields.append(("Connection", rng.choice(fields)[0]))
    rng.shuffle(fields)
    content = b"" if status in BODYLESS_STATUS else body(rng)[0]
    framing = "length" if status in BODYLESS_STATUS else rng.choice(["length", "chunked"] + (["close"] if allow_close else []))
    chunked_body = framing == "chunked"
    interim = None
    if rng.random() < 0.1:
        interim = tuple(("Link", field_value(rng, ows=False)) for _ in range(rng.randint(1, 2)))
    return UpstreamResponse(
        status, reason, tuple(fields), content, framing, cut(rng, content) if chunked_body else (),
        chunk_extension=rng.choice(["", ";ext=1"]) if chunked_body else "",
        trailers=rng.choice(TRAILERS) if chunked_body else "",
        interim=interim,
    )


def upstream_responses(allow_close: bool = True) -> st.SearchStrategy[UpstreamResponse]:
    return seeded().map(lambda rng: random_response(rng, allow_close))
