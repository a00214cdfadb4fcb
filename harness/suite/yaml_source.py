"""Safe YAML reading that remembers where each value came from, so errors can name file:line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_NODES = 100_000


class SourceError(ValueError):
    """One line: `file:line: what was wrong`."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {' '.join(message.split())}")


class YamlSource:
    """A parsed document and its node tree (the tree only carries line numbers)."""

    def __init__(self, path: Path, raw: bytes | None = None) -> None:
        """`raw`: the document's bytes when they come from elsewhere (a results file); `path` still names it."""
        self.path = path
        self.raw = self._read(path) if raw is None else raw
        try:
            text = self.raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            self.data: Any = yaml.safe_load(text)
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise SourceError(path, mark.line + 1 if mark else 1, f"invalid YAML: {problem}") from None
        except RecursionError:
            raise SourceError(path, 1, "invalid YAML: nested too deeply") from None
        if self.root is not None:
            self._refuse_aliases(self.root)

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SourceError(path, None, "no such file") from None
        except OSError as exc:
            raise SourceError(path, None, f"cannot read ({exc.strerror or type(exc).__name__})") from None

    def _refuse_aliases(self, root: yaml.Node) -> None:
        """Aliases can make a small document expand into a huge one; suites have no need for them."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                raise SourceError(self.path, self.line_of_node(node), "YAML anchors and aliases are not allowed")
            seen.add(id(node))
            if len(seen) > MAX_NODES:
                raise SourceError(self.path, self.line_of_node(node), f"more than {MAX_NODES} YAML nodes")
            if isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in node.value for n in pair)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)

    @staticmethod
    def line_of_node(node: yaml.Node) -> int:
        return node.start_mark.line + 1

    def line_of(self, loc: tuple[Any, ...]) -> int:
        """Line of the value at `loc` (keys and list indices), or of the deepest part of it that exists."""
        node = self.root
        if node is None:
            return 1
        for part in loc:
            child = self._child(node, part)
            if child is None:
                break
            node = child
        return self.line_of_node(node)

    @staticmethod
    def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    return value
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            return node.value[part]
        return None

    def error(self, loc: tuple[Any, ...], message: str) -> SourceError:
        field = dotted(loc)
        return SourceError(self.path, self.line_of(loc), f"{field}: {message}" if field else message)


def dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
