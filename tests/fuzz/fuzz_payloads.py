"""Generated payloads for the adapter and extraction properties: random, and golden ones mutated.

Random JSON rarely gets past an adapter's first check; a golden payload with one to three
mutations (a key dropped or renamed, a value retyped, a list emptied, doubled or unwrapped, a
NaN or a 2**100 where a float was) reaches the deep code paths: shapes, datatypes, batches,
binary tensors, ids. Byte-level mutations (flips, cuts, splices) cover broken framing.
"""

from __future__ import annotations

import copy
import json
import math
import random
import struct
import zlib
from typing import Any

from adapters_support import body_bytes, golden_cases
from hypothesis import strategies as st


class Text(str):
    """A golden body given as text (CSV, SSE): sent as is, where any other document is sent as JSON."""


def _golden_doc(side: dict[str, Any]) -> Any:
    return Text(side["body_text"]) if "body_text" in side else side["body"]


GOLDEN = golden_cases()
GOLDEN_DOCS: list[tuple[str, str, Any, Any]] = [  # (adapter, path, request doc, response doc)
    (name, case["path"], _golden_doc(case["request"]), _golden_doc(case["response"])) for name, case in GOLDEN
]
GOLDEN_BODIES: list[bytes] = [body_bytes(case[side]) for _, case in GOLDEN for side in ("request", "response")]

PATHS = ("/v2/models/m/infer", "/v2/models/m/versions/2/infer", "/v1/models/m:predict", "/v1/models/m:classify",
         "/invocations", "/api/v1.0/predictions", "/api/v0.1/predictions", "/v1/chat/completions",
         "/v1/completions", "/predict", "/score", "/", "/v2/models/m/infer/extra")
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "text/csv", "text/plain",
                 "text/event-stream", "application/octet-stream", "application/x-ndjson", "", "multipart/form-data")
# Keys and values the protocols give meaning to (v2, v1, mlflow, seldon, openai).
KEYS = ("inputs", "outputs", "name", "shape", "datatype", "data", "parameters", "binary_data_size", "id",
        "instances", "predictions", "signature_name", "b64", "dataframe_split", "dataframe_records", "columns",
        "index", "names", "ndarray", "tensor", "values", "jsonData", "strData", "binData", "meta", "puid",
        "model", "messages", "prompt", "content", "text", "choices", "message", "delta", "finish_reason",
        "usage", "prompt_tokens", "completion_tokens", "model_name", "model_version", "tensor_input")
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BF16", "BYTES", "fp32", "X")
# Values that break naive code: extremes, NaN, lone surrogates, empty and nested containers.
NASTY: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 2**100, 1e308, -1e308, 5e-324, -0.0, math.nan, math.inf,
    -math.inf, "", "x", "NaN", "1e999", "\u0000", "\ud800", "\udfff\ud800", *DATATYPES[:4], [], {}, [[]], [[], []],
    [0, 0, 0], [-1], [2**40], {"": None},
)


def dumps(doc: Any) -> bytes:
    """A document as a client might send it: JSON with NaN and Infinity tokens allowed (the
    stdlib fallback reads them), or a golden text body as is."""
    if isinstance(doc, Text):
        return doc.encode()
    return json.dumps(doc, allow_nan=True).encode()


def random_scalar(rng: random.Random) -> Any:
    """A JSON scalar, often one the protocols give meaning to or one that breaks naive code."""
    pick = rng.random()
    if pick < 0.3:
        return copy.deepcopy(rng.choice(NASTY))  # copies: a mutation must never edit the constants
    if pick < 0.45:
        return rng.choice(KEYS)
    if pick < 0.55:
        return rng.choice(DATATYPES)
    if pick < 0.7:
        return rng.randint(-(2**rng.randint(0, 70)), 2**rng.randint(0, 70))
    if pick < 0.85:
        return rng.uniform(-1e6, 1e6)
    return "".join(chr(rng.randint(0x20, 0x2FF)) for _ in range(rng.randint(0, 6)))


def random_json(rng: random.Random, budget: int = 25) -> Any:
    """A JSON value of at most about `budget` leaves, objects keyed mostly by protocol keys."""
    if budget <= 1 or rng.random() < 0.3:
        return random_scalar(rng)
    size = rng.randint(0, 5)
    share = max(1, (budget - 1) // max(1, size))
    if rng.random() < 0.5:
        return [random_json(rng, share) for _ in range(size)]
    keys = [rng.choice(KEYS) if rng.random() < 0.8 else random_scalar(rng) for _ in range(size)]
    return {k if isinstance(k, str) else str(k): random_json(rng, share) for k in keys}


def _slots(doc: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in `doc`, depth first."""
    if isinstance(doc, dict):
        for key in list(doc):
            out.append((doc, key))
            _slots(doc[key], out)
    elif isinstance(doc, list):
        for i in range(len(doc)):
            out.append((doc, i))
            _slots(doc[i], out)
    return out


def _mutate_once(rng: random.Random, root: list[Any]) -> None:
    """One mutation of the value in a random slot (`root` is a one-element list holding the doc)."""
    container, key = rng.choice(_slots(root, []))
    value = container[key]
    op = rng.choice(["delete", "replace", "wrap", "unwrap", "double", "truncate", "retype", "rename"])
    if op == "delete" and container is not root:
        del container[key]
    elif op == "replace":
        container[key] = random_json(rng, 8)
    elif op == "wrap":
        container[key] = [value]
    elif op == "unwrap" and isinstance(value, list) and value:
        container[key] = value[0]
    elif op == "double" and isinstance(value, list):
        container[key] = value + copy.deepcopy(value)
    elif op == "truncate" and isinstance(value, (list, str)):
        container[key] = value[:rng.randint(0, max(0, len(value) - 1))]
    elif op == "retype":
        container[key] = _retyped(value)
    elif op == "rename" and isinstance(container, dict):
        container[rng.choice(KEYS)] = container.pop(key)
    else:
        container[key] = random_scalar(rng)


def _retyped(value: Any) -> Any:
    """The same value as another JSON type: numbers as strings, strings as numbers, lists as objects."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


def mutate_doc(rng: random.Random, doc: Any) -> Any:
    """`doc` with one to three mutations (deep-copied: the golden docs stay as they are)."""
    root = [copy.deepcopy(doc)]
    for _ in range(rng.randint(1, 3)):
        _mutate_once(rng, root)
    return root[0]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """`data` with a byte flipped, a range cut, random bytes inserted, a slice doubled, or truncated."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "cut", "insert", "double", "truncate"])
        i = rng.randint(0, len(out))
        j = rng.randint(i, min(len(out), i + 16))
        if op == "flip" and i < len(out):
            out[i] ^= 1 << rng.randint(0, 7)
        elif op == "cut":
            del out[i:j]
        elif op == "insert":
            out[i:i] = rng.choice([rng.randbytes(rng.randint(1, 8)), b"{", b"]", b'"', b"\\u", b"NaN", b"\x00"])
        elif op == "double":
            out[i:i] = out[i:j]
        else:
            del out[i:]
    return bytes(out)


def v2_binary_body(rng: random.Random) -> tuple[bytes, str]:
    """(body, Inference-Header-Content-Length): a V2 JSON header with binary tensors after it,
    the sizes, shapes and header length sometimes right and sometimes not."""
    tensors = []
    for i in range(rng.randint(0, 3)):
        size = rng.randint(0, 64)
        entry: dict[str, Any] = {"name": f"t{i}", "datatype": rng.choice(DATATYPES),
                                 "shape": [rng.randint(-1, 8) for _ in range(rng.randint(0, 3))],
                                 "parameters": {"binary_data_size": rng.choice([size, size, size + 1, -1, 0, 2**40])}}
        tensors.append((entry, rng.randbytes(size)))
    header = json.dumps({rng.choice(["inputs", "outputs"]): [t for t, _ in tensors]}).encode()
    body = header + b"".join(data for _, data in tensors)
    if rng.random() < 0.5:  # BYTES tensors: 4-byte little-endian length prefixes, sometimes lying
        body += struct.pack("<I", rng.randint(0, 2**32 - 1)) + rng.randbytes(rng.randint(0, 8))
    length = rng.choice([str(len(header))] * 3 + [str(len(header) - 1), str(len(body) + 1), "0", "-1", " 12 ", "x"])
    return body, length


def gzip_member(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflate(data: bytes, raw: bool) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# Zeros that inflate past the decoded-size cap of the fuzzed Extractor (a zip bomb; see
# test_fuzz_adapters.MAX_BODY_BYTES, which keeps the cap small so each bomb costs little).
ZIP_BOMB = gzip_member(bytes(2 << 20))


def encoded_body(rng: random.Random, plain: bytes) -> tuple[bytes, str | None]:
    """(body, Content-Encoding): `plain` as sent, or compressed, sometimes wrongly labelled or cut."""
    coding = rng.choice([None, None, "identity", "gzip", "x-gzip", "deflate", "deflate-raw", "gzip, gzip", "br",
                         "GZIP", " gzip ,identity", "bomb", "gzip-cut", ","])
    if coding in ("gzip", "x-gzip", "GZIP", " gzip ,identity"):
        return gzip_member(plain) + rng.choice([b"", b"\0\0\0", b"garbage"]), coding
    if coding == "gzip, gzip":
        return gzip_member(gzip_member(plain)), coding
    if coding == "deflate":
        return deflate(plain, raw=False), coding
    if coding == "deflate-raw":
        return deflate(plain, raw=True), "deflate"
    if coding == "bomb":
        return ZIP_BOMB, "gzip"
    if coding == "gzip-cut":
        data = gzip_member(plain)
        return data[:rng.randint(0, len(data))], "gzip"
    return plain, coding


class SeededRandom(random.Random):
    """A random.Random that shows its seed, so a failing case names what reproduces it."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"SeededRandom({self.seed_value})"


def seeded() -> st.SearchStrategy[random.Random]:
    """A random.Random seeded by Hypothesis: generation at Python speed, reproducible from the seed.

    Hypothesis' own recursive and text strategies cost 10 to 30 ms a JSON document or request
    (and so does st.randoms, which records every call); a plain seeded generator costs well
    under a millisecond, which is what lets a CI run try 10,000 cases within a minute. The
    price is shrinking: a failure shows its input and seed rather than a minimal input.
    """
    return st.integers(0, 2**64 - 1).map(SeededRandom)
