"""A small DOM for the tests: HTML parsed by the standard library's tokenizer into elements.

Void elements (meta, br, ...) close themselves; an end tag closes the nearest open element of
its name, as browsers do for the well-formed pages the card writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    children: list[Element | str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e for e in self.iter()
            if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]  # fmt: skip

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def rows(self) -> list[list[str]]:
        """A table's body rows as cell texts."""
        return [[td.text() for td in tr.find_all("td")] for tr in self.find_all("tr") if tr.find_all("td")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# Attributes through which a page fetches or runs something.
FETCHING = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background", "ping"}


def external_references(root: Element) -> list[str]:
    """Everything in a page that would fetch or run something: elements, attributes, CSS urls."""
    found = []
    for element in root.iter():
        if element.tag in ("script", "link", "iframe", "object", "embed", "img", "image", "use", "base", "frame"):
            found.append(f"<{element.tag}>")
        for name, value in element.attrs.items():
            if name in FETCHING or name.startswith("on"):
                found.append(f"{element.tag}[{name}={value!r}]")
        if element.tag == "style":
            css = element.text().lower()
            found += [f"css {word}" for word in ("url(", "@import", "@font-face") if word in css]
    return found
