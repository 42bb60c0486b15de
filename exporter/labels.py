"""The label policy: the `model` and `version` label values of one exchange, decided once.

The proxy decides them when an exchange ends (`LabelPolicy.decide`) and every series of that
exchange carries them: its traffic series in the proxy, and, through the Event, its rows,
payload errors, tokens, drift and quality in the analysis worker.

- `model`: `model.name` (config or --model) when set; else the `{model}` segment of the
  request path as matched by the route template; else "unknown" (no name anywhere).
- `version`: `model.version` when set; else the `{version}` path segment; else "unknown".

Names from paths are clients' words, so they are capped: the names in `model.known` and the
first `model.max_names` distinct other names are kept, any further one is "other" (counted in
`model_exporter_label_overflow_total{label="model"}`); each kept name keeps its first
`model.max_names` distinct versions the same way. A name or version is only admitted from an
exchange the model server answered with 2xx, so paths the server rejects (scanners, typos)
never take a slot; until admitted they are "other" too. A client can therefore create at most
max_names + len(known) + 2 model values ("unknown" and "other" included).

Series that belong to no exchange (in-flight, upstream up, load duration, the model server's
resources) carry the configured name and version, or "unknown" (`default_labels`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a leaf: nothing of the package at run time
    from exporter.config import ModelConfig

UNKNOWN = "unknown"
OTHER = "other"
LABELS = ("model", "version")  # the values of model_exporter_label_overflow_total's `label`
MAX_VALUE_CHARS = 128  # a longer path segment is never admitted


def default_labels(model: ModelConfig) -> tuple[str, str]:
    """(model, version) of series without an exchange: the configured values, else "unknown"."""
    return (model.name or UNKNOWN, model.version or UNKNOWN)


class _Model:
    """One kept model label value and the version label values decided for it so far."""

    __slots__ = ("label", "versions", "admitted", "other")

    def __init__(self, label: str, version: str | None) -> None:
        self.label = label
        # None: the path names no version (or model.version is set, then it is the only value)
        self.versions: dict[str | None, tuple[str, str]] = {None: (label, version or UNKNOWN)}
        self.admitted = 0  # versions admitted from paths (capped)
        self.other = (label, OTHER)


class LabelPolicy:
    """Decides (model, version) label values; state is bounded by the caps, not by traffic."""

    def __init__(
        self, name: str | None = None, version: str | None = None, known: tuple[str, ...] = (), max_names: int = 10
    ) -> None:
        self.name = name
        self.version = version
        self.known = tuple(known)
        self.max_names = max_names
        self.default = (name or UNKNOWN, version or UNKNOWN)
        self.overflow: dict[str, int] = dict.fromkeys(LABELS, 0)  # cap hits, by label
        self._other = (OTHER, version or OTHER)
        self._models: dict[str | None, _Model] = {None: _Model(name or UNKNOWN, version)}
        self._admitted: list[str] = []  # names admitted from paths, in order (capped)
        if name is not None:
            self._models[name] = self._models[None]
        else:
            for known_name in self.known:
                self._models[known_name] = _Model(known_name, version)

    @classmethod
    def from_config(cls, model: ModelConfig, previous: LabelPolicy | None = None) -> LabelPolicy:
        """The policy for `model`; a reload keeps `previous` (and what it kept) where it can."""
        if previous is not None and previous.settings == (model.name, model.version, model.known, model.max_names):
            return previous
        policy = cls(model.name, model.version, model.known, model.max_names)
        if previous is not None:
            policy.overflow = previous.overflow  # counters never go backwards across a reload
            if policy.name is None:  # names kept before stay kept, in order, within the new cap
                for name in previous._admitted:
                    old = previous._models[name]
                    for v in [v for v in old.versions if v is not None]:
                        policy.decide(name, v, True, count=False)
                    policy.decide(name, None, True, count=False)
        return policy

    @property
    def settings(self) -> tuple[object, ...]:
        return (self.name, self.version, self.known, self.max_names)

    def decide(
        self, name: str | None = None, version: str | None = None, admit: bool = True, count: bool = True
    ) -> tuple[str, str]:
        """(model, version) label values for an exchange whose path (or payload) names `name`/`version`.

        `admit`: whether this exchange may add a new name or version to the kept ones (the proxy
        passes "the model server answered 2xx"). The same arguments always get the same tuple
        object back until a cap admits nothing new, so the hot path allocates nothing here.
        """
        if self.name is not None:
            name = self.name
        if self.version is not None:
            version = None
        model = self._models.get(name)
        if model is None:
            # None is always in _models (the "no name" entry), so a miss is a real name
            model = self._admit_name(name, admit, count) if name is not None else None
            if model is None:
                return self._other
        labels = model.versions.get(version)
        if labels is None:
            # likewise None is always in versions: a miss is a real version
            labels = self._admit_version(model, version, admit, count) if version is not None else model.other
        return labels

    def _admit_name(self, name: str, admit: bool, count: bool) -> _Model | None:
        if not admit or len(name) > MAX_VALUE_CHARS:
            return None
        if len(self._admitted) >= self.max_names:
            if count:
                self.overflow["model"] += 1
            return None
        model = self._models[name] = _Model(name, self.version)
        self._admitted.append(name)
        return model

    def _admit_version(self, model: _Model, version: str, admit: bool, count: bool) -> tuple[str, str]:
        if not admit or len(version) > MAX_VALUE_CHARS:
            return model.other
        if model.admitted >= self.max_names:
            if count:
                self.overflow["version"] += 1
            return model.other
        model.admitted += 1
        labels = model.versions[version] = (model.label, version)
        return labels

    def values(self) -> set[str]:
        """Every model label value this policy can have produced so far (for tests and docs)."""
        return {m.label for m in self._models.values()} | {OTHER}
