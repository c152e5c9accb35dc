"""Which language a person reads (English or Chinese), and where the words come from.

The switch is one setting, ``language``: ``"auto"``, ``"en"`` or ``"zh"``. It is set with
``%config FunMusicMagics.language``, ``FunMusicPanel(language=…)``, ``funmusic --language`` or
the environment variable ``FUNMUSIC_LANGUAGE``. ``"auto"`` means: ``FUNMUSIC_LANGUAGE`` when it
is set, else the kernel's locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``, the first one set, as
gettext reads them): a ``zh…`` locale gives Chinese, anything else English.

Catalogue: stdlib ``gettext`` with the domain ``funmusic`` in ``funmusic_jupyter/locale/``.
English is the source language (the msgids); ``zh_CN/LC_MESSAGES/funmusic.po`` is the Chinese
catalogue, compiled to the ``.mo`` next to it, which is committed so the wheel needs no build
step (``tests/test_i18n.py`` checks it is current). Messages use named ``{placeholders}`` so a
translation can put them in its own order.

Why a context variable and not a global: the magic and a panel in the same kernel may speak
different languages, and songs are made and rendered on the worker thread. Each surface runs its
own code inside ``use_language(its language)``; a job captures the language when it is submitted
(``_worker.Job.language``) and its task runs in that language. Nothing here is process-wide state
but the cached catalogues, which never change.

What never switches: DashScope codes, request ids and the service's own messages, exception
class names, option names, and ``repr()`` (the ``text/plain`` nbval compares), which stay English.
"""

from __future__ import annotations

import contextvars
import functools
import gettext
import os
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

__all__ = [
    "ARGPARSE_MESSAGES",
    "ENV_VARIABLE",
    "LANGUAGES",
    "N_",
    "Language",
    "check_language",
    "clip",
    "configured_language",
    "current_language",
    "display_width",
    "displaying",
    "gettext_",
    "localise_argparse",
    "ngettext",
    "pad",
    "resolve_language",
    "speaking",
    "speaking_init",
    "use_language",
]

Language = Literal["en", "zh"]
#: Every value the ``language`` setting accepts.
LANGUAGES = ("auto", "en", "zh")
ENV_VARIABLE = "FUNMUSIC_LANGUAGE"
DOMAIN = "funmusic"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: The gettext locale each language's catalogue lives under (English needs none: it is the source).
CATALOGUE_LOCALES: dict[str, str] = {"zh": "zh_CN"}
#: The locale variables ``auto`` reads, in gettext's order (``LANGUAGE`` is a GNU list of
#: preferences for gettext's own use; the issue asks for these three).
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")

_current: contextvars.ContextVar[Language | None] = contextvars.ContextVar(
    "funmusic_language", default=None
)

_F = TypeVar("_F", bound=Callable[..., Any])


def check_language(value: object, *, source: str = "language") -> str:
    """``value`` as one of ``LANGUAGES`` (stripped, lower-cased), or a one-line error."""
    if isinstance(value, str) and value.strip().lower() in LANGUAGES:
        return value.strip().lower()
    # Imported here: _errors itself translates its messages through this module.
    from ._errors import ConfigurationError, quote

    raise ConfigurationError(
        gettext_("{source} must be one of {choices}; got {value}").format(
            source=source, choices=", ".join(LANGUAGES), value=quote(value)
        )
    )


def locale_language(environ: os._Environ[str] | dict[str, str] | None = None) -> Language:
    """The language of the process's locale: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
    that is set decides (``zh_CN.UTF-8``, ``zh_TW``, ``zh`` give Chinese; ``C`` English)."""
    env = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = env.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def resolve_language(value: object = None) -> Language:
    """The language to speak for a setting: ``"en"``/``"zh"`` as given; ``"auto"``, ``None`` or
    ``""``: ``FUNMUSIC_LANGUAGE`` when set, else the locale. A bad value (the argument's or the
    variable's) is a one-line ``ConfigurationError``."""
    chosen = "auto" if value is None or value == "" else check_language(value)
    if chosen == "auto":
        env = os.environ.get(ENV_VARIABLE, "").strip()
        if env:
            chosen = check_language(env, source=ENV_VARIABLE)
    if chosen == "auto":
        return locale_language()
    return cast(Language, chosen)


def current_language() -> Language:
    """The language of the code running now: the innermost ``use_language``, else
    ``%config FunMusicMagics.language`` when the extension is loaded and it is not ``auto`` (so
    an error raised by ``fm.build_request`` in a notebook speaks the magic's language), else the
    default (``FUNMUSIC_LANGUAGE``, else the locale). Never raises: a bad ``FUNMUSIC_LANGUAGE``
    is refused where a surface starts (magic, panel, CLI), not in the middle of an error
    message."""
    chosen = _current.get()
    if chosen is not None:
        return chosen
    configured = configured_language()
    if configured in ("en", "zh"):
        return configured
    # Read directly, not through check_language: its message is translated, which would come
    # back here.
    env = os.environ.get(ENV_VARIABLE, "").strip().lower()
    if env in ("en", "zh"):
        return cast(Language, env)
    return locale_language()


@contextmanager
def use_language(value: object) -> Iterator[Language]:
    """Speak ``value`` (a setting: ``auto``, ``en``, ``zh``) inside the ``with`` block, in this
    thread or task only."""
    language = resolve_language(value)
    token = _current.set(language)
    try:
        yield language
    finally:
        _current.reset(token)


def configured_language() -> object:
    """``FunMusicMagics.language`` when the extension is loaded in this IPython, else None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    shell = get_ipython()
    magics = shell.magics_manager.registry.get("FunMusicMagics") if shell is not None else None
    return getattr(magics, "language", None)


@contextmanager
def displaying() -> Iterator[Language]:
    """For an object showing itself (a ``Song``, the library, a cost report): the language
    already chosen by the surface showing it, else ``%config FunMusicMagics.language`` (so the
    magic's setting reaches ``fm.generate(...)``'s songs too), else the default."""
    chosen = _current.get()
    if chosen is not None:
        yield chosen
        return
    with use_language(configured_language()) as language:
        yield language


def speaking(attribute: str) -> Callable[[_F], _F]:
    """A method decorator: run the method in the language held in ``self.<attribute>``.

    For a surface whose methods are called back from anywhere (widget observers on the kernel
    thread, job listeners on the worker thread): each call speaks the surface's language.
    """

    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with use_language(getattr(self, attribute)):
                return method(self, *args, **kwargs)

        return cast(_F, wrapper)

    return decorate


def speaking_init(init: _F) -> _F:
    """Decorate a surface's ``__init__`` that takes ``language=``: resolve it first (a bad value
    fails here, as one line), keep it in ``self._language`` for ``speaking``, and build the
    surface (labels, tooltips, first messages) in that language."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        language = resolve_language(kwargs.get("language"))
        self._language = language
        with use_language(language):
            init(self, *args, **kwargs)

    return cast(_F, wrapper)


@functools.cache
def _catalogue(language: Language) -> gettext.NullTranslations:
    locale = CATALOGUE_LOCALES.get(language)
    if locale is None:
        return gettext.NullTranslations()  # the msgids are the English text
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[locale], fallback=True)


def gettext_(message: str) -> str:
    """``message`` in the current language (the module's ``_``)."""
    return _catalogue(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` in the current language (Chinese has one form)."""
    return _catalogue(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it (a module-level constant that
    is translated where it is shown, in the language of that moment)."""
    return message


_ = gettext_


# -- typography ----------------------------------------------------------------------------

_JOINERS = frozenset({"\u200d", "\u034f"})  # ZERO WIDTH JOINER, COMBINING GRAPHEME JOINER


def _extends(ch: str) -> bool:
    """True when ``ch`` belongs to the character before it (it must not start a cut-off tail)."""
    o = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch in _JOINERS
        or 0xFE00 <= o <= 0xFE0F  # variation selectors (emoji or text presentation)
        or 0xE0100 <= o <= 0xE01EF
        or 0x1F3FB <= o <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= o <= 0xE007F  # tag characters (subdivision flags)
    )


def clip(text: str, limit: int) -> str:
    """The first ``limit`` code points of ``text`` or fewer, never cutting a character apart.

    A cut that would separate a letter from its combining accent, an emoji from its variation
    selector or skin tone, the halves of a ZWJ sequence or a flag's two regional indicators,
    or a surrogate pair (text that came from JavaScript), moves back to the boundary before.
    """
    if len(text) <= limit:
        return text
    end = max(limit, 0)
    while end > 0 and (_extends(text[end]) or text[end - 1] in _JOINERS):
        end -= 1
    if end > 0 and 0xD800 <= ord(text[end - 1]) <= 0xDBFF:  # a lone high surrogate at the end
        end -= 1
    # Regional indicators pair up from the start of their run: keep whole pairs only.
    run = 0
    while end - run > 0 and 0x1F1E6 <= ord(text[end - run - 1]) <= 0x1F1FF:
        run += 1
    if run % 2 and end < len(text) and 0x1F1E6 <= ord(text[end]) <= 0x1F1FF:
        end -= 1
    return text[:end]


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (Chinese) characters take two, combining
    marks none. ``len()`` would misalign a text table as soon as it holds Chinese."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in _JOINERS:
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` columns (``ljust``/``rjust`` by display width)."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


# -- argparse ------------------------------------------------------------------------------
# argparse writes its own words ("usage: ", "options", "invalid choice: …") through the name
# ``_`` in its module, bound to gettext.gettext at import. ``localise_argparse()`` rebinds it
# once to a function that asks our catalogue while a funmusic surface speaks Chinese (an
# explicit ``use_language`` is active) and gives exactly what gettext.gettext gave otherwise,
# so any other argparse user in the process is unaffected. The msgids are argparse's own,
# marked here so they are extracted into the catalogue with ours.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("options"),
    N_("positional arguments"),
    N_("show this help message and exit"),
    N_("show program's version number and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("ignored explicit argument %r"),
)


def _argparse_gettext(message: str) -> str:
    language = _current.get()
    if language is None:  # not inside a funmusic surface: argparse as it always was
        return gettext.gettext(message)
    return _catalogue(language).gettext(message)


def _argparse_ngettext(singular: str, plural: str, n: int) -> str:
    language = _current.get()
    if language is None:
        return gettext.ngettext(singular, plural, n)
    return _catalogue(language).ngettext(singular, plural, n)


def localise_argparse() -> None:
    """Let argparse's own messages follow ``use_language`` (idempotent; see above)."""
    import argparse

    module: Any = argparse
    if module._ is not _argparse_gettext:
        module._ = _argparse_gettext
        module.ngettext = _argparse_ngettext
