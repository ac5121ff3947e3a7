"""Text helpers."""


def shout(text: str) -> str:
    """Upper-case text with an exclamation mark."""
    return text.upper() + "!"
