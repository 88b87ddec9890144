"""Read forms out of HTML pages, as a browser would, for HTTP-level flow tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: list[str] = []
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].buttons[a["name"]] = a.get("value", "")
        elif tag == "label":
            self._in_label = True
            self.labels.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label = False

    def handle_data(self, data: str) -> None:
        if self._in_label:
            self.labels[-1] += data.strip()


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def parse_labels(html: str) -> list[str]:
    parser = _FormParser()
    parser.feed(html)
    return parser.labels


class _TextParser(HTMLParser):
    """Collects the text of every `tag` element, with its attributes."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.found: list[tuple[str, dict[str, str]]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == self.tag:
            self._depth += 1
            self.found.append(("", {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag == self.tag and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            text, attrs = self.found[-1]
            self.found[-1] = ((text + " " + data.strip()).strip(), attrs)


def parse_buttons(html: str) -> list[str]:
    """The visible text of every button, in page order."""
    parser = _TextParser("button")
    parser.feed(html)
    return [text for text, _ in parser.found]


def parse_links(html: str) -> dict[str, str]:
    """Link text -> href of every link on the page."""
    parser = _TextParser("a")
    parser.feed(html)
    return {text: attrs.get("href", "") for text, attrs in parser.found}
