"""The Accelo answer envelope, rendered as JSON, YAML or XML, and the choice between them.

Documents passed to `render` hold only JSON values: dicts with string keys, lists, str, int, float, bool and None.

Choices where Accelo publishes nothing (see docs and the tests):
- YAML is served as `text/x-yaml; charset=utf-8` (the type Accelo's `Accept-Type` header names); XML as
  `text/xml; charset=utf-8`; JSON as plain `application/json` (JSON is always UTF-8, RFC 8259).
- XML: the document is the `<data>` root; scalars are attributes, booleans spelled `true`/`false` as in JSON and
  xs:boolean, None attributes left out; dicts are child elements; a list is a container element named by its key
  holding one child per item named by the key's singular (`subscriptions` -> `subscription`, `deliveries` ->
  `delivery`, `subscriptions_users` -> `user`); list items that are scalars carry their value as element text.
- An `Accept` header that names text/html comes from a browser, which lists application/xml out of habit, not
  want: it is answered in JSON. An `Accept` that accepts none of our types also gets JSON rather than a 406.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Final, Literal, TypedDict
from xml.etree import ElementTree

import yaml

from hookline import errors

try:
    from yaml import CSafeDumper as _YamlSafeDumper
except ImportError:  # PyYAML built without libyaml: the pure-Python dumper, ~5x slower
    from yaml import SafeDumper as _YamlSafeDumper  # type: ignore[assignment]


Format = Literal["json", "yml", "xml"]

DEFAULT_FORMAT: Final[Format] = "json"

MEDIA_TYPES: Final[dict[Format, str]] = {
    "json": "application/json",
    "yml": "text/x-yaml; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}

SUFFIX_FORMATS: Final[dict[str, Format]] = {".json": "json", ".yml": "yml", ".yaml": "yml", ".xml": "xml"}

# Media types (lower case, no parameters) that select each format, in order of preference within the format.
FORMAT_MEDIA_TYPES: Final[dict[Format, tuple[str, ...]]] = {
    "json": ("application/json",),
    "xml": ("text/xml", "application/xml"),
    "yml": ("text/x-yaml", "text/yaml", "application/x-yaml", "application/yaml"),
}
MEDIA_TYPE_FORMATS: Final[dict[str, Format]] = {
    media_type: fmt for fmt, media_types in FORMAT_MEDIA_TYPES.items() for media_type in media_types
}

XML_ROOT_TAG: Final = "data"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
XML_LIST_ITEM_FALLBACK_TAG: Final = "item"
# Singulars the general rule (drop "s", "ies" -> "y", "sses" -> "ss") would get wrong or make awkward.
XML_SINGULAR_OVERRIDES: Final[dict[str, str]] = {"subscriptions_users": "user"}

_XML_INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\-]")
# Characters XML 1.0 cannot carry at all, even escaped; they are replaced by U+FFFD.
_SURROGATES = re.compile("[\ud800-\udfff]")
_XML_INVALID_TEXT_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class _YamlDumper(_YamlSafeDumper):
    """PyYAML's safe dumper without anchors: an object shared by two places is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class Meta(TypedDict):
    """The meta block of a full envelope; pass as `envelope(**meta, response=...)`."""

    status: str
    message: str
    more_info: str


def more_info_url(status: str) -> str:
    """The documentation link for a meta status."""
    return f"{errors.MORE_INFO_BASE}#{status}"


OK_MESSAGE: Final = "Everything executed as expected."
OK_CREATED_MESSAGE: Final = "A resource was successfully created."
OK: Final[Meta] = {"status": "ok", "message": OK_MESSAGE, "more_info": more_info_url("ok")}
OK_CREATED: Final[Meta] = {
    "status": "ok_created",
    "message": OK_CREATED_MESSAGE,
    "more_info": more_info_url("ok_created"),
}


def error_meta(error: errors.HooklineError) -> Meta:
    """The meta block that reports an error."""
    return {"status": error.status, "message": error.message, "more_info": more_info_url(error.status)}


def envelope(status: str, message: str, more_info: str, response: Any) -> dict[str, Any]:
    """The full Accelo envelope: meta (status, message, more_info) and response."""
    return {"meta": {"status": status, "message": message, "more_info": more_info}, "response": response}


def shape(
    envelope: dict[str, Any],
    *,
    suppress_message: bool,
    suppress_http_status: bool,
    suppress_meta: bool,
    http_status: int,
) -> tuple[dict[str, Any], int]:
    """Apply the `_suppress_*` query flags; answer the document to render and the HTTP status to send.

    With both `_suppress_meta` and `_suppress_http_status` the answer is HTTP 200 with no meta: the caller asked
    to hear nothing about the status.
    """
    meta: dict[str, Any] = dict(envelope.get("meta") or {})
    if suppress_message:
        meta.pop("message", None)
        meta.pop("more_info", None)
    sent_status = http_status
    if suppress_http_status:
        meta["response_code"] = http_status
        sent_status = 200
    shaped = {key: value for key, value in envelope.items() if key != "meta"}
    if suppress_meta:
        return shaped, sent_status
    return {"meta": meta, **shaped}, sent_status


def split_format_suffix(path: str) -> tuple[str, Format | None]:
    """Split a `.json`, `.yml`/`.yaml` or `.xml` suffix (any case) off a path: ("/x.yml") -> ("/x", "yml")."""
    stem, dot, extension = path.rpartition(".")
    fmt = SUFFIX_FORMATS.get(f".{extension.lower()}") if dot else None
    # "/a/.json" is a name starting with a dot, not a suffix on "/a/".
    if fmt is None or not stem or stem.endswith("/"):
        return path, None
    return stem, fmt


def negotiate(suffix: Format | None, accept_type: str | None, accept: str | None) -> Format:
    """Choose the answer format: the path suffix, else `Accept-Type`, else `Accept` (q-values honoured), else JSON."""
    if suffix is not None:
        return suffix
    if accept_type:
        for media_range in accept_type.split(","):
            fmt = MEDIA_TYPE_FORMATS.get(_bare_media_type(media_range))
            if fmt is not None:
                return fmt
    if accept:
        return _negotiate_accept(accept)
    return DEFAULT_FORMAT


def _bare_media_type(media_range: str) -> str:
    return media_range.split(";", 1)[0].strip().lower()


def _negotiate_accept(accept: str) -> Format:
    ranges: list[tuple[str, float]] = []
    for media_range in accept.split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        media_type = media_type.lower()
        if not media_type:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media_type, quality))
    if any(media_type == "text/html" and quality > 0 for media_type, quality in ranges):
        return DEFAULT_FORMAT
    # Rank each format by (q, specificity of the range that granted it, earlier in the header); ties go to
    # the order of FORMAT_MEDIA_TYPES, which puts JSON first.
    best_format: Format = DEFAULT_FORMAT
    best_rank: tuple[float, int, int] = (0.0, 0, 0)
    for fmt, media_types in FORMAT_MEDIA_TYPES.items():
        for media_type in media_types:
            rank = _accept_rank(media_type, ranges)
            if rank is not None and rank[0] > 0 and rank > best_rank:
                best_format, best_rank = fmt, rank
    return best_format


def _accept_rank(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int, int] | None:
    """(q, specificity, -position) of the most specific Accept range matching media_type, per RFC 9110."""
    main_type = media_type.split("/", 1)[0]
    best: tuple[float, int, int] | None = None
    best_specificity = -1
    for position, (media_range, quality) in enumerate(ranges):
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{main_type}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best, best_specificity = (quality, specificity, -position), specificity
    return best


def render(document: dict[str, Any], fmt: Format) -> bytes:
    """Serialize a document as UTF-8 bytes in the given format."""
    try:
        return _render(document, fmt)
    except UnicodeEncodeError:
        # A lone surrogate (JSON input may carry "\ud800") cannot be UTF-8: it must not turn an answer into a 500.
        return _render(_replace_surrogates(document), fmt)


def _render(document: dict[str, Any], fmt: Format) -> bytes:
    if fmt == "json":
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    if fmt == "yml":
        rendered: bytes = yaml.dump(
            document,
            Dumper=_YamlDumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            encoding="utf-8",
        )
        return rendered
    return _render_xml(document)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    return value


def _render_xml(document: dict[str, Any]) -> bytes:
    root = ElementTree.Element(XML_ROOT_TAG)
    # Every top-level key is an element, so that a None response still shows as <response />.
    for key, value in document.items():
        _append_xml_value(root, _xml_name(key), value)
    return XML_DECLARATION + ElementTree.tostring(root, encoding="unicode").encode()


def _append_xml_value(parent: ElementTree.Element, tag: str, value: Any) -> None:
    """Append value to parent as an element named tag."""
    if isinstance(value, dict):
        _fill_xml_element(ElementTree.SubElement(parent, tag), value)
    elif isinstance(value, list):
        container = ElementTree.SubElement(parent, tag)
        item_tag = _xml_singular(tag)
        for item in value:
            _append_xml_value(container, item_tag, item)
    else:
        element = ElementTree.SubElement(parent, tag)
        if value is not None:
            element.text = _xml_text(value)


def _fill_xml_element(element: ElementTree.Element, mapping: dict[str, Any]) -> None:
    """Scalars of mapping become attributes of element; dicts and lists become its children."""
    for key, value in mapping.items():
        if isinstance(value, dict | list):
            _append_xml_value(element, _xml_name(key), value)
        elif value is not None:
            element.set(_xml_name(key), _xml_text(value))


def _xml_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if isinstance(value, str) else str(value)
    if _XML_INVALID_TEXT_CHARACTERS.search(text):
        return _XML_INVALID_TEXT_CHARACTERS.sub("\ufffd", text)
    return text


@functools.lru_cache(maxsize=1024)
def _xml_name(key: str) -> str:
    """A valid XML name for key: disallowed characters become "_", and a name cannot start with a digit, "-" or "."."""
    name = _XML_INVALID_NAME_CHARACTERS.sub("_", str(key))
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"_{name}"
    return name


@functools.lru_cache(maxsize=1024)
def _xml_singular(tag: str) -> str:
    """The element name for one item of the list named tag."""
    if tag in XML_SINGULAR_OVERRIDES:
        return XML_SINGULAR_OVERRIDES[tag]
    if tag.endswith("ies") and len(tag) > 3:
        return f"{tag[:-3]}y"
    if tag.endswith("sses"):
        return tag[:-2]
    if tag.endswith("s") and not tag.endswith("ss") and len(tag) > 1 and tag[-2] not in "_-.":
        return tag[:-1]
    return XML_LIST_ITEM_FALLBACK_TAG
