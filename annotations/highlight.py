r"""Syntax highlighting for code outputs, with Pygments, as offsets rather than HTML.

The workspace draws the output itself (text nodes, so selections map to exact code-point offsets), so
the server hands it the token classes as ``[start, end, css_class]`` in code points: Pygments'
``get_tokens_unprocessed`` indexes the text exactly as given (no newline or tab normalisation), so
``text[start:end]`` is the token. The CSS classes are Pygments' short names (``k``, ``s1``, ``c1``…),
styled by ``static/css/code.css`` (generated: ``make code-css``).

An output with Markdown code fences is highlighted only inside them (in the fence's language, Python by
default): the prose around the code stays plain. An output without fences is all code. Pygments' error
tokens (text the lexer could not place) are left unstyled: a red box there would read like a label.

>>> code_tokens("x = 1")
[[2, 3, 'o'], [4, 5, 'mi']]
>>> text = "Try:\n```python\nx = 1\n```\nThis is it."
>>> [text[start:end] for start, end, _ in code_tokens(text)]
['=', '1']
"""

from __future__ import annotations

import re

from pygments.lexer import Lexer
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.token import STANDARD_TYPES, Token, _TokenType
from pygments.util import ClassNotFound

# Beyond this many characters an output is shown plain: highlighting would cost more than it helps.
MAX_HIGHLIGHT_CHARS = 200_000
# Plain text, whitespace, punctuation and names keep the default colour; lexer errors are not styled.
_UNSTYLED = {"", "w", "p", "n", "err"}
# A Markdown fence line: ``` or ~~~ (three or more), optionally followed by a language name.
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)


def _css_class(token_type: _TokenType) -> str:
    while token_type is not Token and token_type not in STANDARD_TYPES:
        token_type = token_type.parent
    return STANDARD_TYPES.get(token_type, "")


def _lexer(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return PythonLexer()


def _code_blocks(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, language)`` of the code inside each fenced block; the whole text when it has no
    fence. An unclosed fence runs to the end of the text."""
    fences = list(_FENCE.finditer(text))
    if not fences:
        return [(0, len(text), "")]
    blocks = []
    index = 0
    while index < len(fences):
        opening = fences[index]
        body_start = min(opening.end() + 1, len(text))
        closing = next(
            (
                fence
                for fence in fences[index + 1 :]
                if fence.group(1)[0] == opening.group(1)[0]
                and len(fence.group(1)) >= len(opening.group(1))
                and not fence.group(2)
            ),
            None,
        )
        body_end = closing.start() if closing else len(text)
        if body_end > body_start:
            blocks.append((body_start, body_end, opening.group(2)))
        if closing is None:
            break
        index = fences.index(closing) + 1
    return blocks


def code_tokens(text: str, language: str = "python") -> list[list]:
    """``[start, end, css_class]`` for every styled token of ``text``'s code, in code points, in order."""
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return []
    tokens = []
    for block_start, block_end, block_language in _code_blocks(text):
        lexer = _lexer(block_language or language)
        for index, token_type, value in lexer.get_tokens_unprocessed(text[block_start:block_end]):
            css_class = _css_class(token_type)
            if value and css_class not in _UNSTYLED:
                start = block_start + index
                tokens.append([start, start + len(value), css_class])
    return tokens
