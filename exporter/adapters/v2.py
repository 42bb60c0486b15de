"""Open Inference Protocol (KServe V2, Triton, MLServer), JSON and the binary tensor extension.

A tensor's first dimension is the batch: shape [N] is one column `name` of N rows; shape
[N, K, …] is K = prod(dims[1:]) columns `name[0]` … `name[K-1]`. A tensor of shape [N, 1]
among several inputs stays one column `name`. A request with a single input of rank ≥ 2
(the common tabular case) always gets `name[j]` columns and `positional=True`, so the
pipeline maps them onto the baseline's column order.

Binary tensors become zero-copy numpy views of the body; JSON tensors of 8 rows or more become
numpy arrays when their values are clean numbers, otherwise (and for smaller tensors) columns
keep the JSON values, so quality checks see nulls and strings as sent. Row ids: the payload
`id` (`id:i` per row of a batch), else the id header. Model and version: the response's
`model_name`/`model_version`, else the route.
"""

from __future__ import annotations

import re
from typing import Any

from exporter.adapters._payload import guarded, header_id, loads_object, row_ids, sniff_object
from exporter.adapters._tensors import DATATYPES, from_binary, from_json, shape_of, split_columns
from exporter.adapters.base import Message, PayloadError, Rows

HEADER_LENGTH = "inference-header-content-length"
_ROUTE = re.compile(r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer/?\Z")
_NAMES_CACHE_MAX = 1024
_CACHED_WIDTH_MAX = 512
_names_cache: dict[tuple[str, int], list[str]] = {}


def _expanded(name: str, width: int) -> list[str]:
    """`name[0]` … `name[width-1]`, cached: the same few tensors arrive again and again."""
    key = (name, width)
    names = _names_cache.get(key)
    if names is None:
        names = [f"{name}[{j}]" for j in range(width)]
        if width <= _CACHED_WIDTH_MAX:  # clients choose names and shapes: keep the cache small
            if len(_names_cache) >= _NAMES_CACHE_MAX:
                _names_cache.clear()
            _names_cache[key] = names
    return names


def _split(message: Message) -> tuple[dict[str, Any], memoryview]:
    """The JSON object and the binary tensor bytes that follow it (empty without the extension)."""
    header = message.headers.get(HEADER_LENGTH)
    if header is None:
        return loads_object(message.body), memoryview(b"")
    text = header.strip()
    if not text.isascii() or not text.isdigit():
        raise PayloadError("invalid_binary", f"Inference-Header-Content-Length is not a length: {header!r:.40}")
    length = int(text)
    if length > len(message.body):
        raise PayloadError("invalid_binary", f"JSON header length {length} exceeds body of {len(message.body)} bytes")
    view = memoryview(message.body)
    return loads_object(view[:length]), view[length:]


def _tensor_rows(tensors: Any, binary: memoryview, what: str) -> Rows:
    """Columns of all `inputs` / `outputs`, binary tensors taken from `binary` in order."""
    if type(tensors) is not list:
        raise PayloadError("unsupported_shape", f"`{what}` must be a list of tensors")
    single = len(tensors) == 1
    columns: dict[str, Any] = {}
    datatypes: dict[str, str] = {}
    n: int | None = None
    offset = 0
    generated = False
    for tensor in tensors:
        if type(tensor) is not dict:
            raise PayloadError("unsupported_shape", f"`{what}` holds a {type(tensor).__name__}, not a tensor object")
        name, datatype = tensor.get("name"), tensor.get("datatype")
        if type(name) is not str:
            raise PayloadError("unsupported_shape", f"tensor name must be a string: {name!r:.40}")
        if type(datatype) is not str or datatype not in DATATYPES:
            raise PayloadError("unsupported_shape", f"tensor {name!r:.40}: unknown datatype {datatype!r:.40}")
        rows, width, rank = shape_of(tensor)
        params = tensor.get("parameters")
        size = params.get("binary_data_size") if type(params) is dict else None
        if size is not None:
            if type(size) is not int or size < 0:
                raise PayloadError("invalid_binary", f"tensor {name!r:.40}: binary_data_size {size!r:.40}")
            chunk = binary[offset : offset + size]
            if len(chunk) < size:
                raise PayloadError("invalid_binary", f"tensor {name!r:.40}: {size} bytes announced, {len(chunk)} sent")
            offset += size
            flat = from_binary(chunk, datatype, rows * width)
        elif "data" in tensor:
            flat = from_json(tensor["data"], datatype, rows, width)
        else:
            raise PayloadError("unsupported_shape", f"tensor {name!r:.40} has neither data nor binary_data_size")
        if n is None:
            n = rows
        elif rows != n:
            raise PayloadError("inconsistent_rows", f"tensor {name!r:.40} has {rows} rows, an earlier one {n}")
        if single and rank >= 2:
            names, generated = _expanded(name, width), True
        elif width == 1:
            names = [name]
        else:
            names = _expanded(name, width)
        if columns and not columns.keys().isdisjoint(names):
            raise PayloadError("unsupported_shape", f"tensor {name!r:.40} repeats a column name")
        columns.update(zip(names, split_columns(flat, rows, width)))
        datatypes.update(dict.fromkeys(names, datatype))
    return Rows(columns=columns, n=n or 0, positional=generated, datatypes=datatypes)


def _label(value: Any) -> str | None:
    """A model name or version from the payload, if it is a plain string or number."""
    if type(value) is str:
        return value or None
    if type(value) is int:
        return str(value)
    return None


class V2Adapter:
    """Adapter for `/v2/models/{model}[/versions/{version}]/infer`."""

    name = "v2"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        if b'"datatype"' not in request.body:
            return False
        doc: dict[str, Any] | None
        try:
            doc, _ = _split(request)
        except PayloadError:
            doc = sniff_object(request.body)  # a bad length header: still V2 if the JSON says so
        inputs = doc.get("inputs") if doc else None
        return type(inputs) is list and any(type(t) is dict and "datatype" in t for t in inputs)

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc, binary = _split(request)
        rows = _tensor_rows(doc.get("inputs"), binary, "inputs")
        rows.ids = row_ids(doc.get("id") or header_id(request), rows.n)
        route = _ROUTE.search(request.path)
        if route:
            rows.model, rows.version = route["model"], route["version"]
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        doc, binary = _split(response)
        rows = _tensor_rows(doc.get("outputs"), binary, "outputs")
        rows.ids = row_ids(doc.get("id") or header_id(request), rows.n)
        route = _ROUTE.search(request.path)
        rows.model = _label(doc.get("model_name")) or (route["model"] if route else None)
        rows.version = _label(doc.get("model_version")) or (route["version"] if route else None)
        return rows


adapter = V2Adapter()
