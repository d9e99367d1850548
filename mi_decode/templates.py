"""Prompt templates (promptsource YAML or plain Python format strings) and the inputs they are applied to.

A template turns an example (a dict of fields) into a prompt and a list of answer choices. Templates are
untrusted input: Jinja templates are rendered in jinja2's ``SandboxedEnvironment`` and format strings may
only name plain fields (no attribute or index access).
"""

from __future__ import annotations

import csv
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

# promptsource's separator between the prompt and the target, and between answer choices.
SEPARATOR = "|||"
# promptsource escapes the separator inside field values with this marker before rendering.
_PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"

_ENVIRONMENT = SandboxedEnvironment()
_ENVIRONMENT.globals.update(zip=zip, enumerate=enumerate)


class TemplateError(ValueError):
    """A template is malformed, or failed to render an example (the message names both)."""


@dataclass(frozen=True)
class RenderedPrompt:
    """A template applied to one example: the prompt text, the answer choices, and the target answer
    text when the template and example give one (else ``None``)."""

    prompt: str
    answer_choices: list[str]
    target: str | None = None


def _escape_pipe(example: Mapping) -> dict:
    return {k: v.replace(SEPARATOR, _PIPE_PROTECTOR) if isinstance(v, str) else v for k, v in example.items()}


def _unescape_pipe(text: str) -> str:
    return text.replace(_PIPE_PROTECTOR, SEPARATOR)


def _describe(example: Mapping, limit: int = 200) -> str:
    text = repr(dict(example))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _JinjaSyntax:
    """promptsource's Jinja: rendered in the sandbox, the output split on ``|||`` into prompt and target;
    answer choices fixed or a Jinja expression."""

    @staticmethod
    def check(template: PromptTemplate) -> None:
        try:
            _ENVIRONMENT.parse(template.source)
            if isinstance(template.answer_choices, str):
                _ENVIRONMENT.parse(template.answer_choices)
        except TemplateSyntaxError as err:
            raise TemplateError(f"template {template.name!r} is not valid Jinja: {err}") from err

    @staticmethod
    def fields(template: PromptTemplate) -> set[str]:
        prompt_source = template.source.split(SEPARATOR, 1)[0]
        try:
            fields = meta.find_undeclared_variables(_ENVIRONMENT.parse(prompt_source))
        except TemplateSyntaxError:
            # The separator sits inside a block: nothing can be said about the prompt part alone.
            return set()
        return fields - {"answer_choices"} - set(_ENVIRONMENT.globals)

    @staticmethod
    def render(template: PromptTemplate, example: Mapping) -> RenderedPrompt:
        protected = _escape_pipe(example)
        choices = template.answer_choices_for(example)
        protected["answer_choices"] = choices
        parts = [
            _unescape_pipe(part).strip()
            for part in _ENVIRONMENT.from_string(template.source).render(protected).split(SEPARATOR)
        ]
        target = parts[1] if len(parts) > 1 and parts[1] else None
        return RenderedPrompt(parts[0], choices, target)


class _FormatSyntax:
    """A Python format string naming plain fields only (no attribute or index access, no format spec),
    with a fixed list of answer choices."""

    @staticmethod
    def check(template: PromptTemplate) -> None:
        if isinstance(template.answer_choices, str):
            raise TemplateError(
                f"template {template.name!r}: a format template needs a list of answer choices"
            )
        for _, field, spec, conversion in string.Formatter().parse(template.source):
            if field is not None and not field.isidentifier():
                raise TemplateError(
                    f"template {template.name!r}: format fields must be plain names, got {{{field}}}"
                )
            if field is not None and (spec or conversion):
                raise TemplateError(
                    f"template {template.name!r}: field {{{field}}} may not have a format spec"
                )

    @staticmethod
    def fields(template: PromptTemplate) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(template.source) if field}

    @staticmethod
    def render(template: PromptTemplate, example: Mapping) -> RenderedPrompt:
        values = {key: example[key] for key in template.fields}
        return RenderedPrompt(template.source.format_map(values), list(template.answer_choices))


# The template syntaxes: a new one is a class with check/fields/render and an entry here.
SYNTAXES = {"jinja": _JinjaSyntax, "format": _FormatSyntax}


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt template.

    Args:
        name: the template's name (unique within a collection).
        source: the template text: Jinja (``syntax="jinja"``, promptsource format: the output is split on
            ``|||`` into prompt and target) or a Python format string with plain ``{field}`` names
            (``syntax="format"``).
        answer_choices: a Jinja expression rendering to ``|||``-separated choices (promptsource), or a
            fixed sequence of choice strings.
        syntax: ``"jinja"`` or ``"format"``.
        id: optional identifier (promptsource's uuid).

    Example:
        >>> from mi_decode.templates import PromptTemplate
        >>> t = PromptTemplate.from_jinja("t0", "{{ sentence }} It was ||| {{ answer_choices[label] }}", "bad ||| good")
        >>> t.render({"sentence": "Loved it.", "label": 1})
        RenderedPrompt(prompt='Loved it. It was', answer_choices=['bad', 'good'], target='good')
        >>> p = PromptTemplate.from_format("p0", "Review: {text}\\nSentiment:", ["negative", "positive"])
        >>> p.render({"text": "Dull."}).prompt
        'Review: Dull.\\nSentiment:'
    """

    name: str
    source: str
    answer_choices: str | tuple[str, ...]
    syntax: str = "jinja"
    id: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TemplateError(f"a template needs a non-empty string name, got {self.name!r}")
        if not isinstance(self.source, str):
            raise TemplateError(f"template {self.name!r}: the template text must be a string")
        if self.syntax not in SYNTAXES:
            raise TemplateError(
                f"template {self.name!r}: syntax must be one of {', '.join(map(repr, SYNTAXES))}, "
                f"got {self.syntax!r}"
            )
        if not isinstance(self.answer_choices, str):
            choices = tuple(self.answer_choices)
            if len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
                raise TemplateError(
                    f"template {self.name!r}: answer_choices must hold at least two non-empty strings, got {choices!r}"
                )
            object.__setattr__(self, "answer_choices", choices)
        SYNTAXES[self.syntax].check(self)

    @classmethod
    def from_jinja(cls, name: str, jinja: str, answer_choices: str | Sequence[str], id: str | None = None):
        """A promptsource-style Jinja template."""
        return cls(name=name, source=jinja, answer_choices=answer_choices, syntax="jinja", id=id)

    @classmethod
    def from_format(cls, name: str, text: str, answer_choices: Sequence[str]):
        """A plain Python template: ``text`` with ``{field}`` placeholders and a fixed list of choices."""
        return cls(name=name, source=text, answer_choices=tuple(answer_choices), syntax="format")

    @property
    def fields(self) -> set[str]:
        """The example fields the prompt part of the template reads."""
        return SYNTAXES[self.syntax].fields(self)

    @property
    def answer_choice_fields(self) -> set[str]:
        """The example fields the answer choices depend on (none for fixed choices)."""
        if not isinstance(self.answer_choices, str):
            return set()
        return meta.find_undeclared_variables(_ENVIRONMENT.parse(self.answer_choices)) - set(
            _ENVIRONMENT.globals
        )

    def render(self, example: Mapping, index: int | None = None) -> RenderedPrompt:
        """Apply the template to ``example``; ``index`` only serves the error message.

        Raises:
            TemplateError: naming the template and the example, if a field is missing or rendering fails.
        """
        where = f"example {index} " if index is not None else "example "
        if not isinstance(example, Mapping):
            raise TemplateError(
                f"template {self.name!r}: {where}must be a mapping of fields, got {type(example)}"
            )
        missing = sorted(self.fields - set(example))
        if missing:
            raise TemplateError(
                f"template {self.name!r} failed to render {where}{_describe(example)}: missing field(s) {missing}"
            )
        try:
            return SYNTAXES[self.syntax].render(self, example)
        except TemplateError:
            raise
        except Exception as err:  # the sandbox raises SecurityError, Jinja UndefinedError, TypeError...
            raise TemplateError(
                f"template {self.name!r} failed to render {where}{_describe(example)}: {type(err).__name__}: {err}"
            ) from err

    def answer_choices_for(self, example: Mapping) -> list[str]:
        """The answer choices for ``example`` (fixed, or rendered from the Jinja expression)."""
        if not isinstance(self.answer_choices, str):
            return list(self.answer_choices)
        rendered = _ENVIRONMENT.from_string(self.answer_choices).render(_escape_pipe(example))
        choices = [_unescape_pipe(choice.strip()) for choice in rendered.split(SEPARATOR)]
        if len(choices) < 2 or not all(choices):
            raise TemplateError(
                f"template {self.name!r}: answer choices {choices!r} for example {_describe(example)} "
                "must be at least two non-empty strings"
            )
        return choices


class _PromptsourceLoader:
    """A yaml SafeLoader that reads promptsource's ``!Template`` and ``!TemplateMetadata`` tags as mappings."""

    @staticmethod
    def make():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def mapping(loader, node):
            return loader.construct_mapping(node, deep=True)

        Loader.add_constructor("!Template", mapping)
        Loader.add_constructor("!TemplateMetadata", mapping)
        return Loader


def load_templates(path: str | Path, names: Iterable[str] | str | None = None) -> list[PromptTemplate]:
    """Read a promptsource ``templates.yaml`` file.

    Args:
        path: the YAML file.
        names: keep only these template names (an iterable of exact names, or a regular expression that
            must match the whole name); ``None`` keeps all. Kept in file order.

    Returns:
        The templates in file order. A name used twice in the file (promptsource allows it) is made unique
        by appending ``@`` and the first 8 characters of the template's id.

    Example:
        >>> from mi_decode.templates import load_templates
        >>> templates = load_templates("templates.yaml", names=r"prompt_\\d+")  # doctest: +SKIP
    """
    import yaml

    path = Path(path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_PromptsourceLoader.make())
    except yaml.YAMLError as err:
        raise TemplateError(f"{path}: not a valid templates file: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("templates"), dict):
        raise TemplateError(f"{path}: expected a promptsource file with a 'templates' mapping")
    if isinstance(names, str):
        pattern = re.compile(names)
        keep = lambda name: pattern.fullmatch(name) is not None  # noqa: E731
    elif names is not None:
        wanted = set(names)
        keep = wanted.__contains__
    else:
        keep = lambda name: True  # noqa: E731

    templates, seen = [], set()
    for key, entry in document["templates"].items():
        if not isinstance(entry, dict) or "jinja" not in entry or "name" not in entry:
            raise TemplateError(f"{path}: template {key!r} lacks 'name' or 'jinja'")
        name = str(entry["name"])
        if not keep(name):
            continue
        template_id = str(entry.get("id", key))
        if name in seen:
            name = f"{name}@{template_id[:8]}"
        seen.add(name)
        if entry.get("answer_choices") is None:
            raise TemplateError(
                f"{path}: template {name!r} has no answer_choices; ranking needs fixed choices"
            )
        templates.append(
            PromptTemplate.from_jinja(name, entry["jinja"], entry["answer_choices"], template_id)
        )
    if names is not None and not templates:
        raise TemplateError(f"{path}: no template matches {names!r}")
    return templates


def load_inputs(source, limit: int | None = None) -> list[dict]:
    """Examples as a list of dicts, from a list of dicts, a ``datasets.Dataset``, or a JSONL/JSON/CSV/TSV file.

    Args:
        source: a sequence of mappings, a ``datasets.Dataset``, or a path (``.jsonl``: one object per line;
            ``.json``: a list of objects; ``.csv``/``.tsv``: a header row, then one example per row).
        limit: keep only the first ``limit`` examples.

    Raises:
        ValueError: naming the file and line of a malformed record.

    Example:
        >>> from mi_decode.templates import load_inputs
        >>> load_inputs([{"sentence": "a"}, {"sentence": "b"}], limit=1)
        [{'sentence': 'a'}]
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}")
    if isinstance(source, (str, Path)):
        examples = _read_file(Path(source), limit)
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # datasets.Dataset
        examples = (source.select(range(min(limit, len(source)))) if limit else source).to_list()
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        examples = []
        for i, example in enumerate(source[:limit] if limit else source):
            if not isinstance(example, Mapping):
                raise ValueError(f"input {i} must be a mapping of fields, got {type(example).__name__}")
            examples.append(dict(example))
    else:
        raise ValueError(
            f"inputs must be a list of dicts, a datasets.Dataset or a file path, got {type(source)}"
        )
    if not examples:
        raise ValueError("no inputs given")
    return examples


def _read_jsonl(path: Path, file, limit: int | None) -> list[dict]:
    examples = []
    for line_number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{line_number}: invalid JSON ({err.msg})") from err
        if not isinstance(example, dict):
            raise ValueError(f"{path}:{line_number}: expected a JSON object, got {type(example).__name__}")
        examples.append(example)
        if limit and len(examples) == limit:
            break
    return examples


def _read_json(path: Path, file, limit: int | None) -> list[dict]:
    try:
        document = json.load(file)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(document, list) or not all(isinstance(e, dict) for e in document):
        raise ValueError(f"{path}: expected a JSON list of objects")
    return document[:limit] if limit else document


def _read_delimited(path: Path, file, limit: int | None) -> list[dict]:
    reader = csv.reader(file, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path}:1: missing header row")
    examples = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{reader.line_num}: expected {len(header)} columns, got {len(row)}")
        examples.append(dict(zip(header, row, strict=True)))
        if limit and len(examples) == limit:
            break
    return examples


# File suffix -> reader(path, open file, limit) of the input files load_inputs takes.
_FILE_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_delimited, ".tsv": _read_delimited}
INPUT_SUFFIXES = tuple(_FILE_READERS)  # the input files load_inputs reads


def _read_file(path: Path, limit: int | None) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    reader = _FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"{path}: unsupported input format {path.suffix.lower()!r} (use {', '.join(INPUT_SUFFIXES)})"
        )
    with path.open(encoding="utf-8", newline="") as file:
        return reader(path, file, limit)
