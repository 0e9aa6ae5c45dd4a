"""Syntax highlighting for code outputs, with Pygments, as offsets rather than HTML.

The workspace draws the output itself (text nodes, so selections map to exact code-point offsets), so
the server hands it the token classes as ``[start, end, css_class]`` in code points: Pygments'
``get_tokens_unprocessed`` indexes the text exactly as given (no newline or tab normalisation), so
``text[start:end]`` is the token. The CSS classes are Pygments' short names (``k``, ``s1``, ``c1``…),
styled by ``static/css/code.css`` (generated: ``make code-css``).

>>> code_tokens("x = 1")
[[2, 3, 'o'], [4, 5, 'mi']]
"""

from __future__ import annotations

from pygments.lexer import Lexer
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.token import STANDARD_TYPES, Token, _TokenType
from pygments.util import ClassNotFound

# Beyond this many characters an output is shown plain: highlighting would cost more than it helps.
MAX_HIGHLIGHT_CHARS = 200_000
_UNSTYLED = {"", "w", "p", "n"}  # plain text, whitespace, punctuation and names keep the default colour


def _css_class(token_type: _TokenType) -> str:
    while token_type is not Token and token_type not in STANDARD_TYPES:
        token_type = token_type.parent
    return STANDARD_TYPES.get(token_type, "")


def _lexer(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return PythonLexer()


def code_tokens(text: str, language: str = "python") -> list[list]:
    """``[start, end, css_class]`` for every styled token of ``text``, in code points, in order."""
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return []
    tokens = []
    for index, token_type, value in _lexer(language).get_tokens_unprocessed(text):
        css_class = _css_class(token_type)
        if value and css_class not in _UNSTYLED:
            tokens.append([index, index + len(value), css_class])
    return tokens
